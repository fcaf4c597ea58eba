"""FoldToBoardBudget: resource-aware PE/SIMD folding of MinifloatMVAU layers.

FINN's ``SetFolding`` meets a cycles-per-frame target and ignores resources. This pass keeps the folding inside the
board's budget:

* with ``target_fps``: every layer is folded just enough to meet ``target_cycles = 1e9 / (clk_ns * target_fps)``
  (``passes.folding.fold_mvau_to_target``: SIMD through the divisors of MW, then PE through those of MH); if the
  estimated total exceeds ``utilization * budget`` for any resource, it fails with ``FoldingError`` naming each
  resource (needed vs available) -- it never returns a folding that does not fit;
* without a target: start fully folded (PE = SIMD = 1) and repeatedly speed up the slowest layer to its next
  folding step while the total still fits, i.e. the fastest folding the greedy search finds within the budget.
  If even the fully folded design does not fit, ``FoldingError`` says by how much.

``utilization`` (default 0.8) leaves room for FIFOs, data-width converters and the shell, as FINN's default
resource target does. The chosen estimates are recorded in ``model.metadata_props["minifinn_folding"]`` (JSON).
Estimates are the ops' own (``node_res_estimation``); cycles ``get_exp_cycles``. Folded: ``MinifloatMVAU`` (PE,
SIMD) and ``MinifloatThresholding`` (PE).
"""

import json

from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from compiler.errors import MinifinnError
from finn.transformation.fpgadataflow.set_folding import divisors
from passes.folding import MINIFLOAT_MVAU_TYPES, fold_mvau_to_target

THRESHOLDING_TYPES = ("MinifloatThresholding_rtl",)
FOLDABLE_TYPES = MINIFLOAT_MVAU_TYPES + THRESHOLDING_TYPES


def fold_to_target(inst, target_cycles):
    """MVAU: SIMD then PE (FINN's rule); thresholding: PE through the divisors of NumChannels."""
    if inst.onnx_node.op_type in MINIFLOAT_MVAU_TYPES:
        return fold_mvau_to_target(inst, target_cycles)
    for pe in divisors(inst.get_nodeattr("NumChannels")):
        inst.set_nodeattr("PE", pe)
        if inst.get_exp_cycles() <= target_cycles:
            return True
    return False

RESOURCES = ("LUT", "FF", "BRAM_18K", "URAM", "DSP")
FOLDING_METADATA_KEY = "minifinn_folding"


class FoldingError(MinifinnError):
    """No folding meets the target within the board's budget."""


def total_resources(model, fpgapart=None):
    total = dict.fromkeys(RESOURCES, 0)
    for node in model.graph.node:
        if node.domain.startswith("finn.custom_op.fpgadataflow"):
            est = getCustomOp(node).node_res_estimation(fpgapart)
            for key in RESOURCES:
                total[key] += est.get(key, 0)
    return total


def max_cycles(model):
    return max(getCustomOp(n).get_exp_cycles() for n in model.graph.node
               if n.domain.startswith("finn.custom_op.fpgadataflow"))


def _overflow(total, budget, utilization):
    return {k: (total[k], int(budget.get(k, 0) * utilization)) for k in RESOURCES
            if total[k] > budget.get(k, 0) * utilization}


def _describe(over):
    return ", ".join(f"{k} {need} needed vs {have} available ({need / max(have, 1):.1f}x)"
                     for k, (need, have) in over.items())


def _next_step(inst):
    """Advance SIMD (then PE) to the next divisor; False when fully unfolded."""
    if inst.onnx_node.op_type in THRESHOLDING_TYPES:
        bigger = [d for d in divisors(inst.get_nodeattr("NumChannels")) if d > inst.get_nodeattr("PE")]
        if bigger:
            inst.set_nodeattr("PE", bigger[0])
        return bool(bigger)
    mw, mh = inst.get_nodeattr("MW"), inst.get_nodeattr("MH")
    simd, pe = inst.get_nodeattr("SIMD"), inst.get_nodeattr("PE")
    bigger = [d for d in divisors(mw) if d > simd]
    if bigger:
        inst.set_nodeattr("SIMD", bigger[0])
        return True
    bigger = [d for d in divisors(mh) if d > pe]
    if bigger:
        inst.set_nodeattr("PE", bigger[0])
        return True
    return False


class FoldToBoardBudget(Transformation):
    def __init__(self, budget, clk_ns=10.0, target_fps=None, utilization=0.8, fpgapart=None, board_name="board"):
        super().__init__()
        self.budget, self.clk_ns, self.target_fps = dict(budget), float(clk_ns), target_fps
        self.utilization, self.fpgapart, self.board_name = float(utilization), fpgapart, board_name

    def apply(self, model):
        nodes = [n for n in model.graph.node if n.op_type in FOLDABLE_TYPES]
        if not nodes:
            raise FoldingError("no MinifloatMVAU / MinifloatThresholding nodes to fold; run the specialize step first")
        insts = [getCustomOp(n) for n in nodes]
        if self.target_fps is not None:
            if self.target_fps <= 0:
                raise FoldingError(f"target_fps must be positive, got {self.target_fps}")
            target_cycles = int(1e9 / (self.clk_ns * self.target_fps))
            if target_cycles < 1:
                raise FoldingError(
                    f"target_fps {self.target_fps:g} needs less than one clock cycle per frame at {self.clk_ns} ns; "
                    f"layers cannot get there even fully unfolded (at most {1e9 / self.clk_ns:.0f} FPS). Lower "
                    "target_fps or raise the clock"
                )
            missed = [n.name for n, inst in zip(nodes, insts) if not fold_to_target(inst, target_cycles)]
            if missed:
                fastest = min(1e9 / (self.clk_ns * max_cycles(model)), float("inf"))
                raise FoldingError(
                    f"target_fps {self.target_fps:g} needs <= {target_cycles} cycles per frame; layers {missed} "
                    f"cannot get there even fully unfolded (best {fastest:.0f} FPS at {self.clk_ns} ns). Lower "
                    "target_fps or raise the clock"
                )
            over = _overflow(total_resources(model, self.fpgapart), self.budget, self.utilization)
            if over:
                raise FoldingError(
                    f"target_fps {self.target_fps:g} does not fit {self.board_name} at {self.utilization:.0%} "
                    f"utilization: {_describe(over)}. Lower target_fps or pick a larger board"
                )
        else:
            for inst in insts:
                inst.set_nodeattr("PE", 1)
                if inst.onnx_node.op_type in MINIFLOAT_MVAU_TYPES:
                    inst.set_nodeattr("SIMD", 1)
            over = _overflow(total_resources(model, self.fpgapart), self.budget, self.utilization)
            if over:
                raise FoldingError(
                    f"the fully folded design (PE = SIMD = 1) does not fit {self.board_name} at "
                    f"{self.utilization:.0%} utilization: {_describe(over)}. Pick a larger board or smaller formats"
                )
            while True:
                slowest = max(insts, key=lambda i: i.get_exp_cycles())
                saved = (slowest.get_nodeattr("PE"), slowest.get_nodeattr("SIMD"))
                if not _next_step(slowest):
                    break
                if _overflow(total_resources(model, self.fpgapart), self.budget, self.utilization):
                    slowest.set_nodeattr("PE", saved[0])
                    slowest.set_nodeattr("SIMD", saved[1])
                    break
        total = total_resources(model, self.fpgapart)
        cycles = max_cycles(model)
        model.set_metadata_prop(FOLDING_METADATA_KEY, json.dumps({
            "target_fps": self.target_fps, "estimated_fps": 1e9 / (self.clk_ns * cycles), "max_cycles": cycles,
            "total": total, "budget": self.budget, "utilization_limit": self.utilization,
            "folding": {n.name: {"PE": i.get_nodeattr("PE"),
                                 "SIMD": i.get_nodeattr("SIMD") if n.op_type in MINIFLOAT_MVAU_TYPES else 1}
                        for n, i in zip(nodes, insts)},
        }))
        return model, False
