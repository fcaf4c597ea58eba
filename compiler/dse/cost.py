"""Hardware cost of a design-space-exploration point: the compiler's resource estimates of the whole hardware graph.

The build's hardware graph (``step_convert_to_hw``: every layer a hardware op), each node folded to the same
throughput target (``target_cycles`` per frame, or the slowest layer's fastest pace), summed LUT / FF / BRAM_18K /
DSP estimates (LUT from the Yosys-calibrated models), the MVAUs' share ``LUT_mvau``, LUTs by op type and weight
memory bits.
"""

from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.general import GiveUniqueNodeNames

from compiler.boards import get_board
from compiler.config import BuildConfig
from compiler.steps import step_convert_to_hw
from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
from passes.resource_folding import FoldingTargetUnreachableError, SetFoldingResourceAware

#: part the cost estimates are made for (the estimates' LUT/FF models do not depend on it; the DSP/BRAM mapping does)
COST_PART = "xc7z020clg400-1"
#: the folding's cost weights are a U250's resources scaled up so that no design runs out: each layer takes its
#: cheapest folding that meets the target, resources weighed by their share of a large board
COST_BUDGET_SCALE = 1000
#: op types whose LUTs make ``LUT_mvau``: the MAC arrays and the requantizers (fused or standalone)
MAC_AND_REQUANT_OPS = ("MinifloatMVAU", "MinifloatVVAU", "MinifloatThresholding")


def hardware_graph(lowered):
    """The build's hardware graph of a lowered model (``compiler.steps.step_convert_to_hw`` with the default
    ``BuildConfig``: every compute node a hardware op, input quantization / output dequantization on the host),
    specialized to RTL/HLS variants; ``UnmappableNodesError`` names the nodes otherwise."""
    hw = step_convert_to_hw(lowered.transform(GiveUniqueNodeNames()), BuildConfig())
    return hw, hw.transform(SpecializeLayers(COST_PART))


def hardware_cost(specialized, target_cycles):
    """Estimates of the whole hardware graph (``hardware_graph``'s specialized model) folded to ``target_cycles``
    cycles per frame.

    Every hardware node (MVAUs, thresholding, LayerNorm, softmax, LUTs, adds, sliding windows, pooling, reorders)
    takes its cheapest folding that meets the target (passes/resource_folding.py ``SetFoldingResourceAware`` in
    target mode, weights from a large board); when a layer cannot reach the target even fully unfolded, the target
    becomes that layer's fastest cycles (the pipeline's pace). Thresholded nodes whose channels share one row are
    priced as such (``AnnotateSharedThresholds``, part of ``step_convert_to_hw``). Returns {LUT, FF, BRAM_18K,
    DSP: totals, LUT_mvau: the matrix-vector units' and the standalone requantizers' LUTs (the MAC arrays with
    their requantizers, the paper's comparison basis), weight_bits,
    layers, max_cycles, by_op: {op type: LUT}}."""
    budget = {k: v * COST_BUDGET_SCALE for k, v in get_board("U250").resources.items()}

    def fold_to(cycles):
        fold = SetFoldingResourceAware(budget, clk_ns=10.0, target_fps=1e8 / cycles, utilization=1.0,
                                       fpgapart=COST_PART, board_name="cost model")
        specialized.transform(fold)
        return fold

    try:
        fold = fold_to(target_cycles)
    except FoldingTargetUnreachableError as err:
        # a layer cannot go that fast even fully unfolded (e.g. a 28x28 sliding window: one window element per
        # cycle): the pipeline runs at that layer's pace, so the others are folded to it
        fold = fold_to(err.fastest_cycles)
    total = {"LUT": 0, "FF": 0, "BRAM_18K": 0, "DSP": 0, "LUT_mvau": 0, "weight_bits": 0, "layers": 0,
             "max_cycles": fold.result["max_cycles"], "by_op": {}}
    for layer in fold.result["layers"].values():
        res = layer["resources"]
        for key in ("LUT", "FF", "BRAM_18K", "DSP"):
            total[key] += res[key]
        op = layer["op_type"].rsplit("_", 1)[0]
        total["by_op"][op] = total["by_op"].get(op, 0) + res["LUT"]
        total["layers"] += 1
    total["LUT_mvau"] = sum(total["by_op"].get(op, 0) for op in MAC_AND_REQUANT_OPS)
    for node in specialized.graph.node:
        if node.op_type.startswith(("MinifloatMVAU", "MinifloatVVAU")):
            total["weight_bits"] += getCustomOp(node).weight_memory_bits()  # 0 for a streamed (dynamic) matrix
    total = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in total.items()}
    total["by_op"] = {k: round(v) for k, v in sorted(total["by_op"].items())}
    return total
