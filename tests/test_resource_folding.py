"""SetFoldingResourceAware (passes/resource_folding.py): targets met, budgets kept, clear errors, FINN's ops too."""

import itertools
import math

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.util.basic import qonnx_make_model

import custom_ops  # noqa: F401  (registers minifinn's ops into finn's registries)
from compiler.boards import get_board
from compiler.errors import MinifinnError
from compiler.numerics import MinifloatFormat
from custom_ops.examples import random_mvau_model
from passes.resource_folding import (
    RESOURCES,
    FoldingBudgetError,
    FoldingTargetUnreachableError,
    SetFoldingResourceAware,
    folding_record,
    folding_space,
)

BOARD = get_board("Pynq-Z2")
E3M2 = MinifloatFormat(3, 2)


def mvau_chain(dims, fa=E3M2, fw=E3M2, seed=0, n_vec=1, specialize=True):
    """A chain of MinifloatMVAU layers (dims[i] -> dims[i+1], thresholded to ``fa``) from ``random_mvau_model``
    layers, specialized (RTL) for the Pynq-Z2 part."""
    nodes, inits = [], {}
    for i, (mw, mh) in enumerate(zip(dims[:-1], dims[1:])):
        layer, _ = random_mvau_model(fa, fw, fa, mw, mh, 1, 1, False, n_vec=n_vec, seed=seed + i)
        rename = {"x": f"t{i}", "y": f"t{i + 1}", "W": f"W{i}", "T": f"T{i}"}
        node = layer.graph.node[0]
        for j, name in enumerate(node.input):
            if layer.get_initializer(name) is not None:
                inits[rename[name]] = layer.get_initializer(name)
            node.input[j] = rename[name]
        node.output[0] = rename["y"]
        node.name = ""
        nodes.append(node)
    tensors = [helper.make_tensor_value_info(f"t{i}", TensorProto.FLOAT, [n_vec, d]) for i, d in enumerate(dims)]
    graph = helper.make_graph(nodes, "mvau_chain", [tensors[0]], [tensors[-1]], value_info=tensors[1:-1])
    model = ModelWrapper(qonnx_make_model(graph))
    for name, value in inits.items():
        model.set_initializer(name, value)
    for i in range(len(dims)):
        model.set_tensor_datatype(f"t{i}", fa.datatype)
    for i in range(len(dims) - 1):
        model.set_tensor_datatype(f"W{i}", fw.datatype)
    model = model.transform(GiveUniqueNodeNames())
    if specialize:
        from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

        model = model.transform(SpecializeLayers(BOARD.part))
    return model


def totals(model):
    """Sum of the ops' own estimates at the model's current folding."""
    total = dict.fromkeys(RESOURCES, 0.0)
    for node in model.graph.node:
        est = getCustomOp(node).node_res_estimation(BOARD.part)
        for k in RESOURCES:
            total[k] += est.get(k, 0)
    return total


def max_cycles(model):
    return max(getCustomOp(n).get_exp_cycles() for n in model.graph.node)


def fps(model, clk_ns=10.0):
    return 1e9 / (clk_ns * max_cycles(model))


def all_options(inst, node):
    """(attrs, cycles, resources) of every legal folding, evaluated on the op itself (restores the folding)."""
    space = folding_space(node, inst)
    saved = {k: inst.get_nodeattr(k) for k in {k for attrs in space for k in attrs}}
    out = []
    for attrs in space:
        for k, v in attrs.items():
            inst.set_nodeattr(k, v)
        est = inst.node_res_estimation(BOARD.part)
        out.append((attrs, inst.get_exp_cycles(), {k: float(est.get(k, 0)) for k in RESOURCES}))
    for k, v in saved.items():
        inst.set_nodeattr(k, v)
    return out


def fits(total, budget, utilization=0.8):
    return all(total[k] <= utilization * budget.get(k, 0) + 1e-9 for k in RESOURCES)


CHAIN = [64, 32, 16, 10]


@pytest.mark.parametrize("target_fps", [1e5, 1e6, 5e6])
def test_target_fps_is_met_with_the_cheapest_fitting_folding(target_fps):
    model = mvau_chain(CHAIN)
    fold = SetFoldingResourceAware(BOARD.resources, 10.0, target_fps, fpgapart=BOARD.part, board_name=BOARD.name)
    model = model.transform(fold)
    assert fps(model) >= target_fps
    assert fits(totals(model), BOARD.resources)
    target_cycles = 1e9 / (10.0 * target_fps)
    limit = {k: 0.8 * BOARD.resources[k] for k in RESOURCES}
    for node in model.graph.node:
        inst = getCustomOp(node)
        chosen = (inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD"))
        est = inst.node_res_estimation(BOARD.part)
        cost = sum(est.get(k, 0) / limit[k] for k in RESOURCES if limit[k])
        meeting = [o for o in all_options(inst, node) if o[1] <= target_cycles]
        # no folding of this layer that meets the target is cheaper than the chosen one (the layers are independent)
        assert min(sum(o[2][k] / limit[k] for k in RESOURCES if limit[k]) for o in meeting) >= cost - 1e-12
        # and the pass did not over-parallelise: no folding with fewer lanes is as cheap (more lanes can be cheaper:
        # a lane's threshold ROM of <= 8 rows folds into its comparators, custom_ops/threshold_cost.py)
        as_cheap = [o for o in meeting if sum(o[2][k] / limit[k] for k in RESOURCES if limit[k]) <= cost + 1e-12]
        assert chosen[0] * chosen[1] == min(o[0]["PE"] * o[0]["SIMD"] for o in as_cheap)
    rec = folding_record(model)
    assert rec == fold.result and rec["mode"] == "target_fps" and rec["fits"]
    assert rec["estimated_fps"] == pytest.approx(fps(model)) and rec["max_cycles"] == max_cycles(model)
    assert rec["total"] == pytest.approx(totals(model))
    # the record holds each node's folding: PE, SIMD, the MAC datapath (use_dsp) and the weight ROM's place the pass
    # chose ("auto" ram_style)
    assert all({"PE", "SIMD", "use_dsp", "ram_style"} == set(f) for f in rec["folding"].values())
    assert {n.name: {k: getCustomOp(n).get_nodeattr(k) for k in ("PE", "SIMD", "use_dsp", "ram_style")}
            for n in model.graph.node} == rec["folding"]
    assert all(getCustomOp(n).get_nodeattr("cycles_estimate") == getCustomOp(n).get_exp_cycles()
               for n in model.graph.node)


def test_higher_targets_cost_more():
    luts = []
    for target in (1e5, 1e6, 5e6):
        model = mvau_chain(CHAIN).transform(SetFoldingResourceAware(BOARD.resources, 10.0, target))
        luts.append(totals(model)["LUT"])
    assert luts[0] < luts[1] < luts[2]


def _budget(model, factor):
    """A budget with LUT = factor x the fully folded design's LUTs / 0.8 (others from the board)."""
    folded = mvau_chain(CHAIN)
    return dict(BOARD.resources, LUT=totals(folded)["LUT"] * factor / 0.8)


def _brute_force_fastest(model, budget):
    opts = [all_options(getCustomOp(n), n) for n in model.graph.node]
    best = math.inf
    for combo in itertools.product(*opts):
        total = {k: sum(o[2][k] for o in combo) for k in RESOURCES}
        if fits(total, budget):
            best = min(best, max(o[1] for o in combo))
    return best


@pytest.mark.parametrize("factor", [1.05, 1.5, 2.0, 4.0])
def test_no_target_is_the_fastest_folding_within_a_tiny_budget(factor):
    model = mvau_chain(CHAIN)
    budget = _budget(model, factor)
    fold = SetFoldingResourceAware(budget, 10.0)
    model = model.transform(fold)
    assert fits(totals(model), budget)  # never exceeds the budget
    assert max(getCustomOp(n).get_nodeattr("PE") * getCustomOp(n).get_nodeattr("SIMD")
               for n in model.graph.node) > 1  # it did unfold something
    assert max_cycles(model) == _brute_force_fastest(model, budget)  # and nothing faster fits
    assert fold.result["mode"] == "fastest_fit" and fold.result["target_fps"] is None


def test_no_target_on_the_board_is_fast_and_fits():
    model = mvau_chain(CHAIN).transform(SetFoldingResourceAware(BOARD.resources, 10.0))
    assert fits(totals(model), BOARD.resources)
    assert fps(model) >= 1e6  # Pynq-Z2 holds a 64-32-16-10 e3m2 MLP at >= 1 MFPS (measured 12.5 MFPS)


def test_fully_folded_does_not_fit_says_by_how_much():
    model = mvau_chain(CHAIN)
    # the chain is built fully folded; the cheapest of each layer's options (e.g. its weights in block RAM)
    folded_luts = sum(min(res["LUT"] for _, _, res in all_options(getCustomOp(n), n)) for n in model.graph.node)
    budget = dict(BOARD.resources, LUT=1000)
    with pytest.raises(FoldingBudgetError, match=rf"fully folded\) does not fit .*LUT {folded_luts:.0f} needed vs "
                                                 r"800 available \(80% of 1000; \d+\.\d\dx\)") as err:
        model.transform(SetFoldingResourceAware(budget, 10.0, board_name="tiny"))
    assert isinstance(err.value, MinifinnError)
    assert err.value.needed == {"LUT": folded_luts} and err.value.available == {"LUT": 800}
    assert all(getCustomOp(n).get_nodeattr("PE") == 1 for n in model.graph.node)  # folding left as it was


def test_target_that_does_not_fit_names_resource_and_best_fps():
    model = mvau_chain(CHAIN)
    budget = _budget(model, 2.0)
    best = 1e9 / (10.0 * _brute_force_fastest(model, budget))
    with pytest.raises(FoldingBudgetError, match=rf"target_fps 2e\+07 does not fit tiny: .*LUT \d+ needed vs \d+ "
                                                 rf"available.*fastest folding that fits reaches {best:.1f} FPS"):
        model.transform(SetFoldingResourceAware(budget, 10.0, target_fps=2e7, board_name="tiny"))


def test_impossible_fps_is_a_clear_error():
    model = mvau_chain(CHAIN)
    # fully unfolded every layer takes 1 cycle: 1e8 FPS at 10 ns is the ceiling
    with pytest.raises(FoldingTargetUnreachableError,
                       match=r"target_fps 1e\+09 needs <= 0.1 cycles .*fastest possible folding reaches "
                             r"100000000.0 FPS"):
        model.transform(SetFoldingResourceAware(BOARD.resources, 10.0, target_fps=1e9))
    model = model.transform(SetFoldingResourceAware(get_board("U250").resources, 10.0, target_fps=1e8))
    assert fps(model) == pytest.approx(1e8)  # the ceiling itself is reachable on a big board


def test_bad_arguments_and_graphs_are_clear_errors():
    with pytest.raises(MinifinnError, match="target_fps must be > 0"):
        SetFoldingResourceAware(BOARD.resources, 10.0, target_fps=-1)
    with pytest.raises(MinifinnError, match=r"utilization must be in \(0, 1\]"):
        SetFoldingResourceAware(BOARD.resources, 10.0, utilization=1.5)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    with pytest.raises(MinifinnError, match="no hardware nodes"):
        ModelWrapper(qonnx_make_model(graph)).transform(SetFoldingResourceAware(BOARD.resources))


def test_bram_budget_is_respected():
    """Weights in BRAM: with just enough BRAM the pass fits; one block less and the error names BRAM_18K (and no
    folding meeting the target fits, checked exhaustively)."""
    model = mvau_chain([256, 128, 64], fa=MinifloatFormat(4, 3), fw=MinifloatFormat(4, 3))
    for node in model.graph.node:
        getCustomOp(node).set_nodeattr("ram_style", "block")
    roomy = dict(BOARD.resources, LUT=10**7)
    brams = totals(model.transform(SetFoldingResourceAware(roomy, 10.0, target_fps=2e5)))["BRAM_18K"]
    assert brams > 0
    model = model.transform(SetFoldingResourceAware(dict(roomy, BRAM_18K=brams / 0.8), 10.0, target_fps=2e5))
    assert totals(model)["BRAM_18K"] <= brams and fps(model) >= 2e5
    tight = dict(roomy, BRAM_18K=(brams - 1) / 0.8)
    with pytest.raises(FoldingBudgetError, match=rf"BRAM_18K {brams:.0f} needed vs {brams - 1:.0f} available"):
        model.transform(SetFoldingResourceAware(tight, 10.0, target_fps=2e5))
    opts = [[o for o in all_options(getCustomOp(n), n) if o[1] <= 1e9 / (10.0 * 2e5)] for n in model.graph.node]
    assert not any(fits({k: sum(o[2][k] for o in c) for k in RESOURCES}, tight) for c in itertools.product(*opts))


def test_overflowing_resource_is_traded_by_reweighting():
    """Two layers whose LUT-cheap folding needs BRAM and whose BRAM-free folding needs LUTs: the first choice
    overflows BRAM, the reweighted choice fits (internal _picks_for on hand-made options)."""
    from types import SimpleNamespace

    from passes.resource_folding import _Option

    def res(lut, bram):
        return dict(dict.fromkeys(RESOURCES, 0.0), LUT=lut, BRAM_18K=bram)

    layers = [SimpleNamespace(name=f"L{i}", options=[_Option({"PE": 1}, 10, res(10, 5)),
                                                      _Option({"PE": 2}, 10, res(30, 0)),
                                                      _Option({"PE": 4}, 5, res(60, 0))]) for i in range(2)]
    fold = SetFoldingResourceAware({"LUT": 100, "BRAM_18K": 8, "FF": 1, "URAM": 0, "DSP": 0})
    picks, over = fold._picks_for(layers, 10)
    assert not over and sum(p.res["BRAM_18K"] for p in picks.values()) <= 6.4
    assert sum(p.res["LUT"] for p in picks.values()) <= 80 and all(p.cycles <= 10 for p in picks.values())
    # the LUT-cheapest choice (PE=1 twice: 10 BRAM) overflows 6.4 BRAM; reweighting moved BRAM into LUTs
    assert any(p.attrs["PE"] == 2 for p in picks.values())
    picks, over = SetFoldingResourceAware({"LUT": 100, "BRAM_18K": 4})._picks_for(layers, 5)
    assert picks is None and over == {"LUT": (120.0, 80.0)}


def _finn_mvau_threshold_graph():
    """FINN's own MVAU (INT4) followed by FINN's Thresholding, specialized."""
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    mw, mh, rng = 32, 16, np.random.default_rng(0)
    mvau = helper.make_node(
        "MVAU", ["x", "W", "T"], ["h"], domain="finn.custom_op.fpgadataflow", backend="fpgadataflow", MW=mw, MH=mh,
        PE=1, SIMD=1, inputDataType="INT4", weightDataType="INT4", outputDataType="UINT4", ActVal=0,
        binaryXnorMode=0, noActivation=0, numInputVectors=[1], mem_mode="internal_decoupled")
    thr = helper.make_node(
        "Thresholding", ["h", "T2"], ["y"], domain="finn.custom_op.fpgadataflow", backend="fpgadataflow",
        NumChannels=mh, PE=1, numSteps=3, inputDataType="UINT4", weightDataType="INT5", outputDataType="UINT2",
        ActVal=0, numInputVectors=[1])
    graph = helper.make_graph([mvau, thr], "finn_ops", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, mw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, mh])],
                              value_info=[helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, mh])])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_initializer("W", rng.integers(-8, 8, size=(mw, mh)).astype(np.float32))
    model.set_initializer("T", np.sort(rng.integers(-100, 100, size=(mh, 15)), axis=1).astype(np.float32))
    model.set_initializer("T2", np.sort(rng.integers(0, 16, size=(mh, 3)), axis=1).astype(np.float32))
    for name, dt in (("x", "INT4"), ("W", "INT4"), ("h", "UINT4"), ("T2", "INT5")):
        model.set_tensor_datatype(name, DataType[dt])
    return model.transform(GiveUniqueNodeNames()).transform(SpecializeLayers(BOARD.part))


def test_finn_ops_are_folded_with_their_own_estimates():
    model = _finn_mvau_threshold_graph()
    assert [n.op_type for n in model.graph.node] == ["MVAU_hls", "Thresholding_rtl"]
    fold = SetFoldingResourceAware(BOARD.resources, 10.0, target_fps=2e7, fpgapart=BOARD.part)
    model = model.transform(fold)  # 2e7 FPS at 10 ns: <= 5 cycles per frame
    assert fps(model) >= 2e7 and fits(totals(model), BOARD.resources)
    mvau, thr = (getCustomOp(n) for n in model.graph.node)
    # 512 MACs in <= 5 cycles needs >= 103 lanes; FINN's weight-stream limit SIMD * 4 bits <= 36 caps SIMD at 8
    assert (mvau.get_nodeattr("SIMD"), mvau.get_nodeattr("PE")) == (8, 16)
    assert thr.get_nodeattr("PE") == 4  # 16 channels in <= 5 cycles: the smallest PE is 4
    assert set(fold.result["folding"]) == {n.name for n in model.graph.node} and not fold.result["not_folded"]
