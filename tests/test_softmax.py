"""MinifloatSoftmax: Python golden == exact rational statement == cppsim (g++) == rtlsim (Icarus) bit for bit;
precision vs the float island; InferMinifloatSoftmax on the lowered ViT (graph runs, clear errors); trained-ViT
accuracy (slow; measured: 75.0 % with the float island, 74.8 % with MinifloatSoftmax, 1,000 test images).

Measured (2,000 random rows of 16, logits s_in v up to +-1.5 .. +-4, output scale 1/max, see
test_default_precision_vs_float_island): differing output codes vs the float island (fp32 Dequantize -> softmax ->
QuantizeToFormat) for P/G = mantissaBits/alignBits:

    formats          P4G2    P6G4   P8G8   P10G10  P12G12  P16G16  P20G20
    e3m2 -> e3m2     14.9 %  3.9 %  0.90 % 0.20 %  0.050 % 0.003 % 0.000 %
    e4m3 -> e4m3     27.5 %  6.7 %  1.38 % 0.38 %  0.100 % 0.003 % 0.000 %
    e4m3 (+-4 nats)  64.2 % 16.9 %  1.62 % 0.46 %  0.100 % 0.003 % 0.000 %
    int8 -> uint8    35.1 %  8.5 %  2.10 % 0.57 %  0.134 % 0.025 % 0.000 %

The default P = 12, G = 12 (24-bit e_i) is the knee: 0.05-0.13 % of codes differ, each by one code step.
"""

import copy
import shutil

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.util.basic import qonnx_make_model

import custom_ops  # noqa: F401  (registers the ops)
from compiler.errors import UnmappableSoftmaxError, UnsupportedNodeError
from compiler.numerics import IntFormat, MinifloatFormat
from custom_ops.capabilities import divisors
from custom_ops.hls.minifloat_softmax_hls import MinifloatSoftmax_hls
from custom_ops.minifloat_softmax import YOSYS_UNITS, reference_rational
from custom_ops.softmax_schedule import rtl_schedule, useful_units

needs_sim = pytest.mark.skipif(shutil.which("g++") is None or shutil.which("iverilog") is None,
                               reason="needs g++ and iverilog")
F = MinifloatFormat


def softmax_model(fi, fo, n, rows, s_in, s_out, p=12, g=12, pe=1, impl="", ku=1):
    suffix = f"_{impl}" if impl else ""
    node = helper.make_node(
        "MinifloatSoftmax" + suffix, ["x"], ["y"], domain="finn.custom_op.fpgadataflow" + (f".{impl}" if impl else ""),
        backend="fpgadataflow", name="sm", NumChannels=n, PE=pe, inputDataType=fi.qonnx_name,
        outputDataType=fo.qonnx_name, in_scale=float(s_in), out_scale=float(s_out), mantissaBits=p, alignBits=g,
        numInputVectors=[rows], thresholdUnits=ku)
    graph = helper.make_graph([node], "softmax", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, n])])
    return ModelWrapper(qonnx_make_model(graph))


def random_codes(fi, rows, n, seed, spread=3.0):
    """Random rows; every third row constant (each output exactly 1/n: exact ties for some output scales)."""
    rng = np.random.default_rng(seed)
    x = fi.quantize((rng.normal(size=(rows, n)) * fi.max / spread).astype(np.float32))
    x[::3] = x[::3, :1]
    return x


def float_island(x, fo, s_in, s_out):
    """The lowered graph's island: fp32 Dequantize, softmax in fp32, QuantizeToFormat (fp32 division)."""
    xf = (x * np.float32(s_in)).astype(np.float32)
    e = np.exp(xf - xf.max(-1, keepdims=True))
    p = (e / e.sum(-1, keepdims=True)).astype(np.float32)
    return fo.quantize(p / np.float32(s_out))


CASES = [  # input, output, N, rows, s_in, s_out, P, G, PE
    (F(3, 2), F(3, 2), 16, 12, 0.054, 0.0194, 12, 12, 4),
    (F(3, 2), F(3, 2), 16, 12, 0.2, 0.0194, 8, 2, 2),  # shift range 17 > G: truncated alignment, max search
    (F(4, 3), F(4, 3), 12, 8, 0.01, 1 / 480, 12, 12, 3),
    (F(4, 3), F(2, 3), 8, 10, 0.03, 1 / 7.5, 10, 3, 8),
    (IntFormat(8), IntFormat(8, signed=False), 16, 6, 0.02, 1 / 255, 12, 12, 4),
    (IntFormat(4), IntFormat(4, signed=False), 5, 9, 0.4, 1 / 15, 6, 0, 5),
    (F(2, 1), F(3, 2), 4, 20, 0.7, 1 / 28, 16, 20, 1),  # wide: cmp_bits > 62, Python-int path
    (F(3, 2), F(2, 1), 4, 8, 0.1, 1.0, 12, 12, 2),  # constant rows: 1/4 is e2m1's midpoint 0.25, a tie (-> 0)
]


def _id(c):
    return f"{c[0].name}->{c[1].name}_N{c[2]}_P{c[6]}G{c[7]}_pe{c[8]}"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_python_golden_equals_exact_rational_statement(case):
    fi, fo, n, rows, s_in, s_out, p, g, pe = case
    model = softmax_model(fi, fo, n, rows, s_in, s_out, p, g, pe)
    x = random_codes(fi, rows, n, seed=n + p)
    op = getCustomOp(model.graph.node[0])
    got = execute_onnx(model, {"x": x})["y"]
    assert np.array_equal(got, reference_rational(x, fi, fo, s_in, s_out, p, g))
    assert np.array_equal(got, op.execute_python_ints(x))
    assert np.all(got >= 0) and got.shape == x.shape


def test_alignment_modes_and_wide_path_are_exercised():
    ops = {_id(c): getCustomOp(softmax_model(*c[:8], c[8]).graph.node[0]) for c in CASES}
    exact = [op.exact_alignment() for op in ops.values()]
    assert any(exact) and not all(exact)
    assert any(op.cmp_bits() > 62 for op in ops.values())


@needs_sim
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_cppsim_and_rtlsim_bit_exact(case):
    from finn.transformation.fpgadataflow.compile_cppsim import CompileCppSim
    from finn.transformation.fpgadataflow.prepare_cppsim import PrepareCppSim
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
    from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode

    fi, fo, n, rows, s_in, s_out, p, g, pe = case
    x = random_codes(fi, rows, n, seed=rows)
    want = execute_onnx(softmax_model(fi, fo, n, rows, s_in, s_out, p, g, pe), {"x": x})["y"]
    hls = softmax_model(fi, fo, n, rows, s_in, s_out, p, g, pe, impl="hls")
    hls = hls.transform(PrepareCppSim()).transform(CompileCppSim()).transform(SetExecMode("cppsim"))
    assert np.array_equal(execute_onnx(hls, {"x": x})["y"], want), "cppsim"
    rtl = softmax_model(fi, fo, n, rows, s_in, s_out, p, g, pe, impl="rtl")
    rtl = rtl.transform(PrepareIP("xc7z020clg400-1", 10.0)).transform(PrepareRTLSim()).transform(SetExecMode("rtlsim"))
    assert np.array_equal(execute_onnx(rtl, {"x": x})["y"], want), "rtlsim"
    op = getCustomOp(rtl.graph.node[0])
    # random input gaps and output backpressure in the testbench: a few % above the gap-free schedule
    assert op.get_exp_cycles() <= op.get_nodeattr("cycles_rtlsim") <= 1.3 * op.get_exp_cycles() + 10


def test_ties_follow_the_output_format():
    """Rows of n equal logits are exactly 1/n each. With s_out = 4/n the quotient 1/(n s_out) = 0.25 is the midpoint
    between 0 and 0.5 of e2m1 and rounds to even (0); a slightly smaller scale passes it (0.5). UINT2: 0.5 -> 0."""
    fi = F(3, 2)
    below = float(np.float32(1 - 2.0**-20))
    for fo, n, s_out, want in ((F(2, 1), 1, 4.0, 0.0), (F(2, 1), 2, 2.0, 0.0), (F(2, 1), 4, 1.0, 0.0),
                               (F(2, 1), 2, 2.0 * below, 0.5), (IntFormat(2, signed=False), 1, 2.0, 0.0),
                               (IntFormat(2, signed=False), 1, 2.0 * below, 1.0)):
        x = np.full((3, n), 1.5, dtype=np.float32)
        op = getCustomOp(softmax_model(fi, fo, n, 3, 0.1, s_out).graph.node[0])
        y = op.execute_python(x)
        assert np.all(y == want), (fo.name, n, s_out, y)
        assert np.array_equal(y, reference_rational(x, fi, fo, 0.1, s_out, 12, 12))


def test_default_precision_vs_float_island():
    """Fraction of output codes differing from the float island at the default P = G = 12 (measured 0.05 % for e3m2,
    0.10 % for e4m3), and the error falls with the table precision."""
    rows, n = 1000, 16
    for fi, limit in ((F(3, 2), 0.003), (F(4, 3), 0.005)):
        s_in, s_out = np.float32(1.5 / fi.max), np.float32(1 / fi.max)
        x = random_codes(fi, rows, n, seed=7)
        ref = float_island(x, fi, s_in, s_out)
        frac = {}
        for p in (6, 12, 16):
            op = getCustomOp(softmax_model(fi, fi, n, rows, s_in, s_out, p, p).graph.node[0])
            got = op.execute_python(x)
            frac[p] = float(np.mean(got != ref))
            steps = np.abs(fi.encode(got).astype(int) - fi.encode(ref).astype(int))
            assert p < 12 or steps.max() <= 1  # at P >= 12 only neighbouring codes differ
        assert frac[12] <= limit and frac[16] < frac[12] < frac[6], frac


def test_cycles_and_estimates():
    exact = getCustomOp(softmax_model(F(3, 2), F(3, 2), 16, 12, 0.054, 0.0194, 12, 12, 4).graph.node[0])
    trunc = getCustomOp(softmax_model(F(3, 2), F(3, 2), 16, 12, 0.2, 0.0194, 8, 2, 4).graph.node[0])
    k = len(exact.row_thresholds()[0])
    # one multiplier: T's K cycles and the hand-over bound every row; the first row also pays A's pass (after the
    # reset cycle), the last C's words (and the testbench's count)
    assert exact.get_exp_cycles() == 1 + 4 + 12 * (k + 1) + 4 + 1
    assert trunc.passes() == 2 and exact.passes() == 1
    for op in (exact, trunc):
        res = op.node_res_estimation("xc7z020clg400-1")
        assert res["LUT"] > 0 and res["DSP"] >= 1 and res["BRAM_18K"] == 0
    wide = getCustomOp(softmax_model(F(3, 2), F(3, 2), 16, 12, 0.054, 0.0194, 12, 12, 8).graph.node[0])
    assert wide.lut_estimation() > exact.lut_estimation()  # PE lanes cost comparators


def _flagship_softmax(pe=16, ku=1):
    """The flagship ViT's first softmax: 16 scores a row, 64 rows a frame (4 heads x 16 tokens), E3M2, K = 31."""
    return getCustomOp(softmax_model(F(3, 2), F(3, 2), 16, 64, 0.5001742243766785, 0.035672690719366074, 12, 12, pe,
                                     ku=ku).graph.node[0])


def test_threshold_units_shorten_rows_and_cost_their_multipliers():
    op = _flagship_softmax()
    k = len(op.row_thresholds()[0])
    assert k == 31 and not op.exact_alignment()
    per_unit = op.dsp_estimation()
    cycles, luts, ffs = {}, {}, {}
    for ku in (1, 2, 4, 8, 16, 31):
        op.set_nodeattr("thresholdUnits", ku)
        cycles[ku], luts[ku], ffs[ku] = op.get_exp_cycles(), op.lut_estimation(), op.ff_estimation()
        assert op.dsp_estimation() == ku * per_unit
        assert cycles[ku] == rtl_schedule(64, 1, 2, k, ku)["cycles"]
        assert cycles[ku] <= 64 * max(2, -(-k // ku) + 1) + 8  # max(passes * N / PE, ceil(K / KU) + 1) a row
    assert all(cycles[a] > cycles[b] and luts[a] < luts[b] for a, b in zip(cycles, list(cycles)[1:]))
    assert cycles[31] <= 140 < 2176 // 15  # the rows-in-series core took 64 * (3 + 31) = 2,176
    op.set_nodeattr("thresholdUnits", 0)
    with pytest.raises(UnsupportedNodeError, match="thresholdUnits=0"):
        op.get_exp_cycles()


def test_threshold_unit_costs_follow_the_yosys_runs_of_the_core():
    """LUTs added per multiplier within 10 % of Yosys' (``YOSYS_UNITS``), FFs within 5 %, DSPs at least Yosys'."""
    op = _flagship_softmax(pe=4)
    est = {}
    for ku, lut, ff, dsp in YOSYS_UNITS:
        op.set_nodeattr("thresholdUnits", ku)
        est[ku] = op.lut_estimation()
        assert abs(op.ff_estimation() - ff) <= 0.05 * ff and dsp <= op.dsp_estimation() <= 1.5 * dsp
    (k0, l0, _, _), *rest = YOSYS_UNITS
    for ku, lut, _, _ in rest:
        assert abs((est[ku] - est[k0]) - (lut - l0)) <= 0.1 * (lut - l0), (ku, est[ku] - est[k0], lut - l0)


def test_folding_space_pairs_pe_with_the_useful_units():
    from passes.resource_folding import folding_space

    op = _flagship_softmax(pe=1)
    space = op.folding_space()
    assert folding_space(op.onnx_node, op) == space  # the folding pass chooses both
    assert sorted({f["PE"] for f in space}) == divisors(16)
    k = len(op.row_thresholds()[0])
    for pe in divisors(16):
        kus = [f["thresholdUnits"] for f in space if f["PE"] == pe]
        assert kus[0] == 1 and kus == sorted(kus) and kus[-1] == useful_units(16 // pe, 2, k)
        cycles = {}
        for ku in range(1, kus[-1] + 3):
            op.set_nodeattr("PE", pe)
            op.set_nodeattr("thresholdUnits", ku)
            cycles[ku] = op.get_exp_cycles()
        assert all(cycles[a] > cycles[b] for a, b in zip(kus, kus[1:]))  # every listed KU is faster
        # beyond the last, more multipliers only shorten the last row's thresholds (the frame's tail), not a row
        assert cycles[kus[-1]] - min(cycles.values()) <= -(-k // kus[-1])
    assert [f["thresholdUnits"] for f in space if f["PE"] == 1] == [1]  # A's 2 x 16 cycles a row: K + 1 keeps up
    assert [f["thresholdUnits"] for f in space if f["PE"] == 16][-1] == 31  # A's 2 cycles: one cycle of products
    hls = MinifloatSoftmax_hls(op.onnx_node)
    assert [f["thresholdUnits"] for f in hls.folding_space() if f["PE"] == 16][-1] == k  # the serial loop: up to K


RTL_UNIT_CASES = [  # CASES index, thresholdUnits, rows (back to back, full rate for the cycle count)
    (0, 4, 12), (0, 31, 12), (1, 3, 16), (5, 100, 9), (6, 5, 20),
]
SLOW_RTL_UNIT_CASES = [(3, 2, 10), (3, 16, 10), (2, 7, 8), (4, 9, 6), (7, 2, 8), (1, 31, 16)]


def _unit_id(c):
    return f"{_id(CASES[c[0]])}_ku{c[1]}_r{c[2]}"


@needs_sim
@pytest.mark.parametrize("case", RTL_UNIT_CASES, ids=_unit_id)
def test_rtlsim_threshold_units_bit_exact_and_cycles_as_modelled(case):
    _check_units(case)


@needs_sim
@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW_RTL_UNIT_CASES, ids=_unit_id)
def test_rtlsim_threshold_units_grid(case):
    _check_units(case)


def _check_units(case):
    """KU multipliers and overlapped rows: rtlsim == golden with random stalls and at full rate, where the
    measured cycles equal ``softmax_schedule.rtl_schedule``; cppsim with the same KU == golden."""
    from finn.transformation.fpgadataflow.compile_cppsim import CompileCppSim
    from finn.transformation.fpgadataflow.prepare_cppsim import PrepareCppSim
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
    from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode

    index, ku, rows = case
    fi, fo, n, _, s_in, s_out, p, g, pe = CASES[index]
    x = random_codes(fi, rows, n, seed=rows + ku)
    want = execute_onnx(softmax_model(fi, fo, n, rows, s_in, s_out, p, g, pe), {"x": x})["y"]
    rtl = softmax_model(fi, fo, n, rows, s_in, s_out, p, g, pe, impl="rtl", ku=ku)
    rtl = rtl.transform(PrepareIP("xc7z020clg400-1", 10.0)).transform(PrepareRTLSim())
    op = getCustomOp(rtl.graph.node[0])
    assert np.array_equal(op.run_rtlsim({"x": x}, gaps=True), want), "rtlsim with stalls"
    assert np.array_equal(op.run_rtlsim({"x": x}, gaps=False), want), "rtlsim at full rate"
    assert op.get_nodeattr("cycles_rtlsim") == op.get_exp_cycles()
    hls = softmax_model(fi, fo, n, rows, s_in, s_out, p, g, pe, impl="hls", ku=ku)
    hls = hls.transform(PrepareCppSim()).transform(CompileCppSim()).transform(SetExecMode("cppsim"))
    assert np.array_equal(execute_onnx(hls, {"x": x})["y"], want), "cppsim"


def test_finn_passes_accept_the_op():
    from functools import partial

    from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer
    from finn.analysis.fpgadataflow.res_estimation import res_estimation
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    part = "xc7z020clg400-1"
    for style, impl in (("", "MinifloatSoftmax_rtl"), ("hls", "MinifloatSoftmax_hls"), ("rtl", "MinifloatSoftmax_rtl")):
        model = softmax_model(F(3, 2), F(3, 2), 16, 12, 0.054, 0.0194, 12, 12, 4)
        getCustomOp(model.graph.node[0]).set_nodeattr("preferred_impl_style", style)
        model = model.transform(SpecializeLayers(part))
        node = model.graph.node[0]
        assert node.op_type == impl
        op = getCustomOp(node)
        assert model.analysis(exp_cycles_per_layer)[node.name] == op.get_exp_cycles()
        assert model.analysis(partial(res_estimation, fpgapart=part))[node.name]["LUT"] == op.lut_estimation()


# --- the conversion pass on the lowered ViT --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vit_lowered(tmp_path_factory):
    from compiler.export import export_qonnx_model
    from compiler.ptq import quantize_ptq
    from compiler.zoo import build_model
    from passes import lower_qonnx

    torch.manual_seed(0)
    cfg = dict(image_size=8, patch_size=4, dim=16, depth=1, heads=2)
    f, q = build_model("vit", "float", **cfg), build_model("vit", "fp:e3m2", **cfg)
    quantize_ptq(f, q, torch.randn(32, 1, 8, 8))
    return lower_qonnx(export_qonnx_model(q, torch.randn(1, 1, 8, 8), tmp_path_factory.mktemp("vit") / "vit.onnx"))


def test_pass_replaces_the_vit_softmax_and_the_graph_runs(vit_lowered):
    from passes.compare import execute_lowered
    from passes.infer_softmax import InferMinifloatSoftmax

    low = vit_lowered
    sm = low.transform(InferMinifloatSoftmax())
    ops = [n.op_type for n in sm.graph.node]
    assert "Softmax" not in ops and ops.count("MinifloatSoftmax") == 1
    assert ops.count("Dequantize") == [n.op_type for n in low.graph.node].count("Dequantize") - 1
    node = [n for n in sm.graph.node if n.op_type == "MinifloatSoftmax"][0]
    op = getCustomOp(node)
    assert op.get_nodeattr("numInputVectors") == [1, 2, 4] and op.get_nodeattr("NumChannels") == 4
    i, o = low.graph.input[0].name, low.graph.output[0].name
    rng = np.random.default_rng(0)
    differing = total = 0
    for _ in range(4):
        x = rng.normal(size=(1, 1, 8, 8)).astype(np.float32)
        ref = execute_lowered(low, {i: x}, return_full_exec_context=True)
        got = execute_lowered(sm, {i: x}, return_full_exec_context=True)
        scores = ref[node.input[0]]
        assert np.array_equal(got[node.output[0]], op.execute_python(scores))  # the op on the same scores
        differing += int(np.sum(got[node.output[0]] != ref[node.output[0]]))
        total += scores.size
        assert got[o].shape == ref[o].shape and np.all(np.isfinite(got[o]))
    assert differing <= 0.02 * total


def _island_nodes(model):
    sm = [n for n in model.graph.node if n.op_type == "Softmax"][0]
    return model.find_producer(sm.input[0]), sm, model.find_consumer(sm.output[0])


def test_unmappable_softmax_is_a_clear_error(vit_lowered):
    from passes.infer_softmax import InferMinifloatSoftmax

    model = ModelWrapper(copy.deepcopy(vit_lowered.model))
    _, sm, _ = _island_nodes(model)
    sm.attribute[0].i = 2
    with pytest.raises(UnmappableSoftmaxError, match=rf"{sm.name}.*axis 2.*last axis"):
        model.transform(InferMinifloatSoftmax())
    kept = model.transform(InferMinifloatSoftmax(strict=False))
    assert "Softmax" in [n.op_type for n in kept.graph.node]

    model = ModelWrapper(copy.deepcopy(vit_lowered.model))
    deq, sm, _ = _island_nodes(model)
    model.set_initializer(deq.input[1], np.array([0.1, 0.2], dtype=np.float32))
    with pytest.raises(UnmappableSoftmaxError, match=rf"{sm.name}.*not a finite scalar constant"):
        model.transform(InferMinifloatSoftmax())

    model = ModelWrapper(copy.deepcopy(vit_lowered.model))
    with pytest.raises(Exception, match="mantissaBits=40"):
        model.transform(InferMinifloatSoftmax(mantissa_bits=40))


# --- accuracy on a trained ViT (slow) ------------------------------------------------------------------------------


@pytest.mark.slow
def test_trained_vit_accuracy_with_and_without_the_replacement(tmp_path):
    """3 epochs on 8,000 Fashion-MNIST images (dim 32, depth 2, 16 tokens), PTQ e3m2 (first/last e4m3), lowered;
    accuracy of the lowered graph with the float softmax island vs with MinifloatSoftmax on 1,000 test images."""
    from compiler.data import load_fashion_mnist
    from compiler.export import export_qonnx_model
    from compiler.ptq import quantize_ptq
    from compiler.training import train
    from compiler.zoo import QuantSpec, build_model
    from passes import lower_qonnx
    from passes.compare import _run
    from passes.infer_softmax import InferMinifloatSoftmax

    x_train, y_train = load_fashion_mnist("train")
    x_test, y_test = load_fashion_mnist("test")
    cfg = dict(image_size=28, in_channels=1, patch_size=7, dim=32, depth=2, heads=2, mlp_ratio=2, num_classes=10,
               pooling="gap")
    torch.manual_seed(0)
    f = build_model("vit", "float", **cfg)
    train(f, x_train[:8000], y_train[:8000], epochs=3, lr=3e-3, threads=1, progress=False)
    q = build_model("vit", QuantSpec(weights="fp:e3m2", acts="fp:e3m2", first="fp:e4m3", last="fp:e4m3"), **cfg)
    quantize_ptq(f, q, torch.from_numpy(x_train[8000:8256]))
    low = lower_qonnx(export_qonnx_model(q, torch.from_numpy(x_test[:1]), tmp_path / "vit.onnx"))
    sm = low.transform(InferMinifloatSoftmax())
    n = 1000
    acc = {}
    for name, model in (("island", low), ("op", sm)):
        out, o = _run(model, x_test[:n], 250, [], exact=True)
        acc[name] = float(np.mean(out[o].reshape(n, -1).argmax(1) == y_test[:n]))
    print("accuracy", acc)
    assert acc["island"] > 0.6 and abs(acc["op"] - acc["island"]) <= 0.01


def test_row_threshold_products_of_63_bits_stay_exact_in_int64():
    """The flagship ViT's first softmax: its row thresholds' products need cmp_bits = 63 (they stay below
    2^(cmp_bits - 2), so int64 holds them); the golden model equals the exact rational statement, on rows and on a
    batch of (images, heads, rows) alike."""
    fi, s_in, s_out = F(3, 2), 0.5001742243766785, 0.035672690719366074
    op = getCustomOp(softmax_model(fi, fi, 16, 64, s_in, s_out, 12, 12, 4).graph.node[0])
    assert 63 <= op.cmp_bits() <= 64
    x = random_codes(fi, 64, 16, seed=5)
    want = reference_rational(x, fi, fi, s_in, s_out, 12, 12)
    assert np.array_equal(op.execute_python(x), want)
    assert np.array_equal(op.execute_python(x.reshape(2, 2, 16, 16)), want.reshape(2, 2, 16, 16))
