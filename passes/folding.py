"""Folding (PE/SIMD) for minifinn's hardware ops, on top of FINN's SetFolding.

FINN's ``SetFolding`` folds the op types it lists by name and leaves others alone. ``SetFoldingMinifloat`` runs it
for FINN's ops and folds ``MinifloatMVAU_hls``/``_rtl`` with FINN's MVAU rule: raise SIMD through the divisors of
MW until the node meets the target cycles per frame, then PE through the divisors of MH. (Embedded weights have no
weight-stream width limit.)
"""

from qonnx.custom_op.registry import getCustomOp

from finn.transformation.fpgadataflow.set_folding import SetFolding, divisors

MINIFLOAT_MVAU_TYPES = ("MinifloatMVAU_hls", "MinifloatMVAU_rtl")


def fold_mvau_to_target(inst, target_cycles):
    """Smallest SIMD, then PE, that meets ``target_cycles``; returns True when the target is met."""
    inst.set_nodeattr("PE", 1)
    inst.set_nodeattr("SIMD", 1)
    for simd in divisors(inst.get_nodeattr("MW")):
        inst.set_nodeattr("SIMD", simd)
        if inst.get_exp_cycles() <= target_cycles:
            return True
    for pe in divisors(inst.get_nodeattr("MH")):
        inst.set_nodeattr("PE", pe)
        if inst.get_exp_cycles() <= target_cycles:
            return True
    return False


class SetFoldingMinifloat(SetFolding):
    """FINN's SetFolding plus MinifloatMVAU folding to the same cycles-per-frame target."""

    def apply(self, model):
        model, _ = super().apply(model)
        self.missed = []
        for node in model.graph.node:
            if node.op_type in MINIFLOAT_MVAU_TYPES:
                if not fold_mvau_to_target(getCustomOp(node), self.target_cycles_per_frame):
                    self.missed.append(node.name)
        return model, False
