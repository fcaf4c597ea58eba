"""MinifloatThresholding's requantizer styles (parallel, bsearch, convert): Python == cppsim == rtlsim bit for bit,
the three styles against each other and against an independent Fraction statement of the conversion contract, the
style selection (folding space, allowed styles) and the resource-aware folding choosing a style."""

import numpy as np
import pytest
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from requant_cases import fraction_reference, requant_model, tie_count

import custom_ops  # noqa: F401
from compiler.errors import UnsupportedNodeError
from compiler.numerics import IntFormat, MinifloatFormat
from custom_ops.general.common import threshold_ints
from finn.transformation.fpgadataflow.compile_cppsim import CompileCppSim
from finn.transformation.fpgadataflow.prepare_cppsim import PrepareCppSim
from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
from passes.resource_folding import SetFoldingResourceAware

PART = "xc7z020clg400-1"
STYLES = ("parallel", "bsearch", "convert")
E = MinifloatFormat
#: (output format, channels, PE, accumulator bits, relu, scale-mantissa bits, extra node attributes): 4-, 6- and
#: 8-bit outputs, minifloats and integers (signed, unsigned, narrow), accumulators below and above 25 bits,
#: multipliers above 18 bits (more than one DSP), block-RAM stages and the LUT-only multiplier
CASES = [
    (E(2, 1), 8, 2, 14, 0, 16, {}),
    (E(3, 2), 8, 4, 20, 0, 16, {"ram_style": "block"}),
    (E(4, 3), 4, 1, 28, 0, 20, {}),
    (IntFormat(4), 8, 4, 16, 0, 16, {"use_dsp": 0}),
    (IntFormat(4, signed=False), 4, 1, 30, 1, 16, {}),
    (IntFormat(8, narrow=True), 8, 2, 24, 0, 16, {}),
    (E(2, 3), 6, 2, 36, 0, 24, {}),
    (E(5, 2), 4, 4, 40, 0, 16, {"ram_style": "block"}),
    (IntFormat(8, signed=False), 8, 2, 18, 1, 12, {}),
    (E(3, 2), 4, 2, 26, 1, 18, {"use_dsp": 0}),
    (IntFormat(6), 4, 1, 12, 0, 8, {}),
    (E(4, 3), 16, 4, 33, 0, 16, {}),
]
VECS = (3, 7)


def _id(case):
    fmt, c, pe, bits, relu, s, attrs = case
    return f"{fmt.name}_c{c}_pe{pe}_acc{bits}{'_relu' if relu else ''}_s{s}" + "".join(f"_{v}" for v in attrs.values())


def _model(case, style, seed):
    fmt, c, pe, bits, relu, s, attrs = case
    return requant_model(fmt, c, pe, bits, VECS, style, relu, seed, s, **attrs)


@pytest.mark.parametrize("seed,case", list(enumerate(CASES)), ids=[_id(c) for c in CASES])
def test_styles_agree_with_each_other_and_the_fraction_contract(seed, case):
    """The cases' thresholds are those of the conversion parameters' exact maps, so all styles give the same values;
    the conversion equals an independent Fraction statement of its contract, ties and saturation included."""
    outs = {}
    for style in STYLES:
        model, acc = _model(case, style, seed)
        outs[style] = execute_onnx(model, {"acc": acc})["y"]
    fmt, relu = case[0], case[4]
    want = fraction_reference(acc, threshold_ints(model.get_initializer("P")), relu, fmt)
    for style in STYLES:
        assert np.array_equal(outs[style], want), style
    params = threshold_ints(model.get_initializer("P"))
    top = float(np.max(fmt.values()))
    assert np.any(outs["convert"] == top) or np.any(outs["convert"] == np.min(fmt.values()))  # saturation
    assert len(np.unique(outs["convert"])) > len(fmt.values()) // 8  # the outputs span the format
    assert tie_count(acc, params, relu, fmt) > 0  # round half to even is exercised
    if fmt.is_minifloat:  # nonzero outputs below the smallest normal value
        mag = np.abs(outs["convert"])
        assert np.any((mag > 0) & (mag < np.ldexp(2.0**fmt.mantissa_bits, fmt.lsb_exponent))), "no subnormals"


def _rtlsim(model):
    hw = model.transform(SpecializeLayers(PART)).transform(PrepareIP(PART, 10.0)).transform(PrepareRTLSim())
    assert hw.graph.node[0].op_type == "MinifloatThresholding_rtl"
    return hw.transform(SetExecMode("rtlsim"))


def _cppsim(model):
    getCustomOp(model.graph.node[0]).set_nodeattr("preferred_impl_style", "hls")
    hw = model.transform(SpecializeLayers(PART))
    assert hw.graph.node[0].op_type == "MinifloatThresholding_hls"
    return hw.transform(PrepareCppSim()).transform(CompileCppSim()).transform(SetExecMode("cppsim"))


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("seed,case", list(enumerate(CASES)), ids=[_id(c) for c in CASES])
def test_rtlsim_bit_exact(style, seed, case):
    """Random valid gaps and backpressure (the testbench's default) through the pipelined cores."""
    model, acc = _model(case, style, seed)
    golden = execute_onnx(model, {"acc": acc})["y"]
    hw = _rtlsim(model)
    assert np.array_equal(execute_onnx(hw, {"acc": acc})["y"], golden)
    inst = getCustomOp(hw.graph.node[0])
    assert inst.get_exp_cycles() == int(np.prod(VECS)) * case[1] // case[2]


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("seed,case", list(enumerate(CASES[:6])), ids=[_id(c) for c in CASES[:6]])
def test_cppsim_bit_exact(style, seed, case):
    model, acc = _model(case, style, seed)
    golden = execute_onnx(model, {"acc": acc})["y"]
    assert np.array_equal(execute_onnx(_cppsim(model), {"acc": acc})["y"], golden)


@pytest.mark.parametrize("style", STYLES)
def test_full_rate_latency(style):
    """Without stalls a word leaves the core every cycle after the pipeline latency."""
    case = CASES[1]
    model, acc = _model(case, style, 1)
    hw = _rtlsim(model)
    inst = getCustomOp(hw.graph.node[0])
    out = inst.run_rtlsim({"acc": acc}, gaps=False)
    assert np.array_equal(out, execute_onnx(model, {"acc": acc})["y"])
    words, cycles = inst.get_exp_cycles(), inst.get_nodeattr("cycles_rtlsim")
    assert words + inst.pipeline_latency() - 2 <= cycles <= words + inst.pipeline_latency() + 2, (words, cycles)


def test_styles_and_folding_space():
    model, _ = _model(CASES[1], "parallel", 0)
    inst = getCustomOp(model.graph.node[0])
    assert inst.allowed_styles() == list(STYLES) and inst.requantizer() == "thresholds"
    space = inst.folding_space()
    assert space[0] == {"PE": 1, "requantStyle": "parallel"}
    assert {(f["PE"], f["requantStyle"]) for f in space} == {(pe, s) for pe in (1, 2, 4, 8) for s in STYLES}
    inst.set_nodeattr("requantStyles", ["convert", "bsearch"])
    assert inst.allowed_styles() == ["bsearch", "convert"]
    inst.set_nodeattr("requantStyle", "bsearch")
    assert inst.requantizer() == "bsearch" and inst.pipeline_latency() == 6 + 2
    # without conversion parameters the node cannot convert: a build restricted to "convert" leaves it its own styles
    model.graph.node[0].input.pop()
    inst = getCustomOp(model.graph.node[0])
    inst.set_nodeattr("requantStyles", ["convert"])
    assert inst.allowed_styles() == ["parallel", "bsearch"]
    inst.set_nodeattr("requantStyle", "convert")
    with pytest.raises(UnsupportedNodeError, match="needs the conversion parameters"):
        inst.execute_node({}, None)


def test_estimates_per_style():
    """One 64-channel E3M2 lane: conversion takes a DSP (none LUT-only, with more LUTs), the binary search fewer LUTs
    than the parallel comparators, block RAM stages take BRAMs and fewer LUTs."""
    fmt = E(3, 2)
    model, _ = requant_model(fmt, 64, 1, 24, (1,), "parallel")
    inst = getCustomOp(model.graph.node[0])
    inst.annotate_convert_widths(model)
    res = {}
    for style, attrs in (("parallel", {}), ("bsearch", {"ram_style": "distributed"}), ("bsearch", {"ram_style":
                         "block"}), ("convert", {"use_dsp": 1}), ("convert", {"use_dsp": 0})):
        inst.set_nodeattr("requantStyle", style)
        for k, v in attrs.items():
            inst.set_nodeattr(k, v)
        res[(style, *attrs.values())] = inst.node_res_estimation(PART)
    assert res[("convert", 1)]["DSP"] == 1 and res[("convert", 0)]["DSP"] == 0
    assert res[("convert", 0)]["LUT"] > res[("convert", 1)]["LUT"] + 300
    assert res[("bsearch", "block")]["BRAM_18K"] > 0 and res[("bsearch", "distributed")]["BRAM_18K"] == 0
    assert res[("bsearch", "block")]["LUT"] < res[("bsearch", "distributed")]["LUT"] < res[("parallel",)]["LUT"]
    assert res[("convert", 1)]["LUT"] < res[("bsearch", "distributed")]["LUT"]


@pytest.mark.parametrize("dsp", [0, 200])
def test_resource_folding_picks_the_style(dsp):
    """The folding chooses the style with PE: conversion when DSPs are there, else the cheaper threshold style."""
    model, _ = requant_model(E(3, 2), 64, 1, 24, (16,), "parallel")
    getCustomOp(model.graph.node[0]).annotate_convert_widths(model)
    budget = {"LUT": 20000, "FF": 40000, "BRAM_18K": 0, "URAM": 0, "DSP": dsp}
    model = model.transform(SetFoldingResourceAware(budget, target_fps=1e9 / (10.0 * 256)))
    inst = getCustomOp(model.graph.node[0])
    assert inst.get_nodeattr("requantStyle") == ("convert" if dsp else "bsearch")
    assert inst.get_exp_cycles() <= 256


@pytest.mark.slow
@pytest.mark.parametrize("style", STYLES)
def test_rtlsim_random_grid(style):
    """A larger random grid: formats of 3..8 bits, accumulators 8..44 bits, PE 1..8, relu."""
    rng = np.random.default_rng(7)
    fmts = [E(2, 1), E(3, 2), E(4, 3), E(2, 2), E(3, 1), E(5, 2), IntFormat(3), IntFormat(5, signed=False),
            IntFormat(8), IntFormat(6, narrow=True)]
    for seed in range(30):
        fmt = fmts[seed % len(fmts)]
        pe = int(rng.choice([1, 2, 4, 8]))
        c = pe * int(rng.integers(1, 5))
        bits, relu = int(rng.integers(8, 45)), int(rng.random() < 0.3)
        model, acc = requant_model(fmt, c, pe, bits, (int(rng.integers(1, 4)), 5), style, relu, 100 + seed,
                                   int(rng.integers(4, 25)))
        golden = execute_onnx(model, {"acc": acc})["y"]
        assert np.array_equal(golden, fraction_reference(acc, threshold_ints(model.get_initializer("P")), relu, fmt))
        assert np.array_equal(execute_onnx(_rtlsim(model), {"acc": acc})["y"], golden), (seed, fmt.name, c, pe, bits)
