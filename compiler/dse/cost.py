"""Hardware cost of a design-space-exploration point: the compiler's resource estimates of the whole hardware graph.

The build's hardware graph (``step_convert_to_hw``: every layer a hardware op), each node folded to the same
throughput target (``target_cycles`` per frame, or the slowest layer's fastest pace), summed LUT / FF / BRAM_18K /
DSP estimates (LUT from the Yosys-calibrated models), LUTs by op type, weight memory bits, and the split into MAC /
requantizer / memory / other that every op states about itself (``resource_breakdown``, custom_ops/capabilities.py;
no list of op names here). ``hardware_costs`` prices a graph twice: with DSPs (the compiler's default: MAC products
and requantizer multipliers may use DSP48s) and LUT-only (every MVAU ``mac_dsp = "lut"``, every requantizer
``use_dsp = 0``: the paper's basis, MACs in LUTs). Ops without a DSP switch keep their DSPs in the LUT-only
variant (the ViT's LayerNorm and softmax: 34 + 34 DSP48 measured on the study ViT, category "other"), so LUT-only
means MACs and requantizers without DSPs, not a DSP-free design.
"""

import copy

from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.general import GiveUniqueNodeNames

from compiler.boards import get_board
from compiler.config import BuildConfig
from compiler.steps import step_convert_to_hw
from custom_ops.capabilities import BREAKDOWN_CATEGORIES
from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
from finn.util.fpgadataflow import is_fpgadataflow_node
from passes.resource_folding import FoldingTargetUnreachableError, SetFoldingResourceAware

#: part the cost estimates are made for (the estimates' LUT/FF models do not depend on it; the DSP/BRAM mapping does)
COST_PART = "xc7z020clg400-1"
#: the folding's cost weights are a U250's resources scaled up so that no design runs out: each layer takes its
#: cheapest folding that meets the target, resources weighed by their share of a large board
COST_BUDGET_SCALE = 1000
#: the two cost variants of a point: with DSPs, and LUT-only (the paper's comparison basis)
COST_VARIANTS = ("dsp", "lut")


def hardware_graph(lowered):
    """The build's hardware graph of a lowered model (``compiler.steps.step_convert_to_hw`` with the default
    ``BuildConfig``: every compute node a hardware op, input quantization / output dequantization on the host),
    specialized to RTL/HLS variants; ``UnmappableNodesError`` names the nodes otherwise."""
    hw = step_convert_to_hw(lowered.transform(GiveUniqueNodeNames()), BuildConfig())
    return hw, hw.transform(SpecializeLayers(COST_PART))


def _hw_nodes(model):
    """The hardware nodes of a graph (FINN's fpgadataflow domain); host-side nodes have no estimates."""
    return [n for n in model.graph.node if is_fpgadataflow_node(n)]


def lut_only(specialized):
    """A copy of ``specialized`` whose MACs and requantizers may not use DSP48s (``mac_dsp = "lut"`` where the op has
    it, else ``use_dsp = 0``)."""
    model = copy.deepcopy(specialized)
    for node in _hw_nodes(model):
        inst = getCustomOp(node)
        attrs = inst.get_nodeattr_types()
        if "mac_dsp" in attrs:
            inst.set_nodeattr("mac_dsp", "lut")
        elif "use_dsp" in attrs:
            inst.set_nodeattr("use_dsp", 0)
    return model


def hardware_costs(specialized, target_cycles):
    """{"dsp": ``hardware_cost`` as built, "lut": ``hardware_cost`` of the ``lut_only`` copy}."""
    return {"dsp": hardware_cost(specialized, target_cycles),  # hardware_cost folds a copy (ModelWrapper.transform)
            "lut": hardware_cost(lut_only(specialized), target_cycles)}


def breakdown(specialized):
    """{category: {LUT, DSP, BRAM_18K}} summed over the folded graph's nodes (each op's ``resource_breakdown``; a node
    without one counts as "other")."""
    total = {c: {"LUT": 0, "DSP": 0, "BRAM_18K": 0} for c in BREAKDOWN_CATEGORIES}
    for node in _hw_nodes(specialized):
        inst = getCustomOp(node)
        if hasattr(inst, "resource_breakdown"):
            parts = inst.resource_breakdown(COST_PART)
        else:
            res = inst.node_res_estimation(COST_PART)
            parts = {"other": {k: res[k] for k in ("LUT", "DSP", "BRAM_18K")}}
        for cat, res in parts.items():
            for k, v in res.items():
                total[cat][k] += v
    return {c: {k: round(v, 1) for k, v in r.items()} for c, r in total.items()}


def hardware_cost(specialized, target_cycles):
    """Estimates of the whole hardware graph (``hardware_graph``'s specialized model) folded to ``target_cycles``
    cycles per frame.

    Every hardware node (MVAUs, thresholding, LayerNorm, softmax, LUTs, adds, sliding windows, pooling, reorders)
    takes its cheapest folding that meets the target (passes/resource_folding.py ``SetFoldingResourceAware`` in
    target mode, weights from a large board); when a layer cannot reach the target even fully unfolded, the target
    becomes that layer's fastest cycles (the pipeline's pace). Thresholded nodes whose channels share one row are
    priced as such (``AnnotateSharedThresholds``, part of ``step_convert_to_hw``). Returns {LUT, FF, BRAM_18K,
    DSP: totals, LUT_mvau: the "mac" and "requant" LUTs of ``breakdown`` (the MAC arrays with their requantizers),
    breakdown: ``breakdown`` of the folded graph, weight_bits, layers, max_cycles, by_op: {op type: LUT}}."""
    budget = {k: v * COST_BUDGET_SCALE for k, v in get_board("U250").resources.items()}

    def fold_to(cycles):
        fold = SetFoldingResourceAware(budget, clk_ns=10.0, target_fps=1e8 / cycles, utilization=1.0,
                                       fpgapart=COST_PART, board_name="cost model")
        return fold, specialized.transform(fold)  # transform works on a copy: the folded graph is the result

    try:
        fold, folded = fold_to(target_cycles)
    except FoldingTargetUnreachableError as err:
        # a layer cannot go that fast even fully unfolded (e.g. a 28x28 sliding window: one window element per
        # cycle): the pipeline runs at that layer's pace, so the others are folded to it
        fold, folded = fold_to(err.fastest_cycles)
    total = {"LUT": 0, "FF": 0, "BRAM_18K": 0, "DSP": 0, "LUT_mvau": 0, "weight_bits": 0, "layers": 0,
             "max_cycles": fold.result["max_cycles"], "by_op": {}}
    for layer in fold.result["layers"].values():
        res = layer["resources"]
        for key in ("LUT", "FF", "BRAM_18K", "DSP"):
            total[key] += res[key]
        op = layer["op_type"].rsplit("_", 1)[0]
        total["by_op"][op] = total["by_op"].get(op, 0) + res["LUT"]
        total["layers"] += 1
    parts = breakdown(folded)
    total["LUT_mvau"] = parts["mac"]["LUT"] + parts["requant"]["LUT"]
    for node in _hw_nodes(folded):
        inst = getCustomOp(node)
        if hasattr(inst, "weight_memory_bits"):  # capabilities: 0 for ops without weights or a streamed matrix
            total["weight_bits"] += inst.weight_memory_bits()
    total = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in total.items()}
    total["breakdown"] = parts
    total["by_op"] = {k: round(v) for k, v in sorted(total["by_op"].items())}
    return total
