"""MinifloatMVAU: Python golden == cppsim (g++) == rtlsim (Icarus), bit for bit; FINN passes accept the op."""

import shutil
from functools import partial

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.basic import qonnx_make_model

import custom_ops  # noqa: F401  (registers the ops into FINN's registries)
from compiler.errors import UnsupportedNodeError
from compiler.numerics import IntFormat, MinifloatFormat
from custom_ops.examples import random_mvau_model

needs_sim = pytest.mark.skipif(shutil.which("iverilog") is None or shutil.which("g++") is None,
                               reason="needs g++ and iverilog (apt-get install g++ iverilog)")


make_mvau_model = random_mvau_model


def reference(fa, fw, fo, model, x, no_act):
    """Independent reference: Python ints, explicit threshold counting."""
    w = model.get_initializer("W").astype(np.float64)
    xi = [[int(round(v * 2.0 ** -fa.lsb_exponent)) for v in row] for row in x.astype(np.float64)]
    wi = [[int(round(v * 2.0 ** -fw.lsb_exponent)) for v in row] for row in w]
    mh = w.shape[1]
    acc = [[sum(xr[k] * wi[k][h] for k in range(len(xr))) for h in range(mh)] for xr in xi]
    if no_act:
        return np.array(acc, dtype=object)
    t = model.get_initializer("T")
    vals = fo.values()
    return np.array([[vals[sum(1 for th in t[h] if a[h] >= th)] for h in range(mh)] for a in acc], dtype=np.float32)


def _run(model, x, mode):
    from qonnx.core.onnx_exec import execute_onnx

    from finn.transformation.fpgadataflow.compile_cppsim import CompileCppSim
    from finn.transformation.fpgadataflow.prepare_cppsim import PrepareCppSim
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
    from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode

    if mode == "cppsim":
        model = model.transform(PrepareCppSim()).transform(CompileCppSim())
    elif mode == "rtlsim":
        model = model.transform(PrepareIP("xc7z020clg400-1", 10.0)).transform(PrepareRTLSim())
    model = model.transform(SetExecMode(mode)) if mode else model
    return execute_onnx(model, {"x": x})["y"]


F = MinifloatFormat
CASES = [  # (input, weight, output, MW, MH, PE, SIMD, noActivation)
    (F(4, 3), F(4, 3), F(4, 3), 16, 8, 2, 4, 0),
    (F(3, 2), F(2, 1), F(3, 2), 12, 6, 3, 3, 0),
    (F(2, 3), F(2, 3), F(2, 3), 8, 4, 4, 8, 1),
    (IntFormat(4), IntFormat(4), IntFormat(4), 32, 16, 4, 8, 0),
    (IntFormat(8), F(2, 1), F(4, 3), 20, 10, 5, 4, 0),
    (F(5, 2), F(5, 2), F(3, 2), 6, 4, 2, 2, 1),
    (IntFormat(3, signed=False), IntFormat(6), IntFormat(5), 9, 3, 1, 3, 0),
    (F(1, 5), F(3, 4), F(2, 2), 64, 32, 8, 16, 0),
]


def _id(c):
    return f"{c[0].name}x{c[1].name}->{c[2].name}_{c[3]}x{c[4]}_pe{c[5]}_simd{c[6]}_noact{c[7]}"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_python_golden_matches_independent_reference(case):
    fa, fw, fo, mw, mh, pe, simd, no_act = case
    model, x = make_mvau_model(fa, fw, fo, mw, mh, pe, simd, no_act, seed=mw)
    got = _run(model, x, None)
    want = reference(fa, fw, fo, model, x, no_act)
    assert np.array_equal(np.asarray(got, dtype=object) if no_act else got, want)


@needs_sim
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_cppsim_and_rtlsim_bit_exact(case):
    fa, fw, fo, mw, mh, pe, simd, no_act = case
    golden = {}
    for suffix, mode in (("", None), (".hls", "cppsim"), (".rtl", "rtlsim")):
        model, x = make_mvau_model(fa, fw, fo, mw, mh, pe, simd, no_act, seed=mw + 1, domain_suffix=suffix)
        if suffix:
            node = model.graph.node[0]
            node.op_type = "MinifloatMVAU" + suffix.replace(".", "_")
        golden[mode] = np.asarray(_run(model, x, mode))
    for mode in ("cppsim", "rtlsim"):
        assert golden[mode].shape == golden[None].shape
        assert np.array_equal(golden[mode].astype(object), golden[None].astype(object)), mode


def test_finn_passes_accept_the_op():
    from qonnx.custom_op.registry import getCustomOp

    from compiler.boards import get_board
    from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer
    from finn.analysis.fpgadataflow.res_estimation import res_estimation
    from finn.transformation.fpgadataflow.create_dataflow_partition import CreateDataflowPartition
    from finn.transformation.fpgadataflow.set_folding import SetFolding
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from passes.resource_folding import SetFoldingResourceAware

    model, _ = make_mvau_model(F(3, 2), F(3, 2), F(3, 2), 16, 8, 1, 1, 0)
    model = model.transform(SpecializeLayers("xc7z020clg400-1"))
    node = model.graph.node[0]
    assert node.op_type == "MinifloatMVAU_rtl" and node.domain == "finn.custom_op.fpgadataflow.rtl"
    cycles_before = model.analysis(exp_cycles_per_layer)[node.name]
    assert cycles_before == 3 * 8 * 16
    model = model.transform(SetFolding(target_cycles_per_frame=50))  # FINN's own pass runs (it skips our op)
    model = model.transform(SetFoldingResourceAware(get_board("Pynq-Z2").resources, 10.0, target_fps=1e9 / (10.0 * 50)))
    inst = getCustomOp(model.graph.node[0])
    assert inst.get_exp_cycles() <= 50 and inst.get_nodeattr("PE") * inst.get_nodeattr("SIMD") > 1
    res = model.analysis(partial(res_estimation, fpgapart="xc7z020clg400-1"))[node.name]
    assert res["LUT"] > 0 and res["DSP"] == 0
    parent = model.transform(CreateDataflowPartition())
    assert [n.op_type for n in parent.graph.node] == ["StreamingDataflowPartition"]


def test_estimates_know_the_format():
    big, _ = make_mvau_model(F(4, 3), F(4, 3), F(4, 3), 16, 8, 2, 4, 0)
    small, _ = make_mvau_model(F(2, 1), F(2, 1), F(2, 1), 16, 8, 2, 4, 0)
    from qonnx.custom_op.registry import getCustomOp

    lut_big = getCustomOp(big.graph.node[0]).lut_estimation()
    lut_small = getCustomOp(small.graph.node[0]).lut_estimation()
    assert lut_big > 2 * lut_small


def test_bad_folding_is_a_clear_error():
    from qonnx.custom_op.registry import getCustomOp

    model, _ = make_mvau_model(F(3, 2), F(3, 2), F(3, 2), 16, 8, 3, 1, 0)
    with pytest.raises(UnsupportedNodeError, match="PE=3 must divide MH=8"):
        getCustomOp(model.graph.node[0]).get_exp_cycles()


def _random_case(rng):
    """A random (formats, shape, folding) case: INT3-8 or ExMy with 3-8 bits, MW/MH up to 256."""
    def fmt():
        bits = int(rng.integers(3, 9))
        if rng.random() < 0.4:
            return IntFormat(bits)
        e = int(rng.integers(1, bits - 1))
        return F(e, bits - 1 - e)

    def divisor(n):
        ds = [d for d in range(1, n + 1) if n % d == 0 and d <= 32]
        return int(rng.choice(ds))

    mw, mh = int(rng.choice([8, 12, 16, 24, 32, 64, 128, 256])), int(rng.choice([4, 6, 8, 16, 32, 64, 256]))
    return (fmt(), fmt(), fmt(), mw, mh, divisor(mh), divisor(mw), int(rng.random() < 0.3))


GRID = [_random_case(np.random.default_rng(seed)) for seed in range(24)]


@pytest.mark.slow
@needs_sim
@pytest.mark.parametrize("case", GRID, ids=_id)
def test_random_grid_cppsim_and_rtlsim_bit_exact(case):
    test_cppsim_and_rtlsim_bit_exact(case)


def test_dynamic_input_python_golden():
    """dynamic_input=1: W is a second (activation) input, e.g. K^T in attention; the golden model alone."""
    from qonnx.core.onnx_exec import execute_onnx

    fa = F(3, 2)
    rng = np.random.default_rng(9)
    n, d = 5, 8
    q = fa.values()[rng.integers(0, len(fa.values()), size=(n, d))].astype(np.float32)
    kt = fa.values()[rng.integers(0, len(fa.values()), size=(d, n))].astype(np.float32)
    node = helper.make_node("MinifloatMVAU", ["q", "kt"], ["s"], domain="finn.custom_op.fpgadataflow",
                            backend="fpgadataflow", MW=d, MH=n, PE=1, SIMD=1, inputDataType=fa.qonnx_name,
                            weightDataType=fa.qonnx_name, accDataType="INT24", outputDataType="INT24",
                            noActivation=1, dynamic_input=1, numInputVectors=[n])
    graph = helper.make_graph([node], "qk", [helper.make_tensor_value_info("q", TensorProto.FLOAT, [n, d]),
                                             helper.make_tensor_value_info("kt", TensorProto.FLOAT, [d, n])],
                              [helper.make_tensor_value_info("s", TensorProto.FLOAT, [n, n])])
    model = ModelWrapper(qonnx_make_model(graph))
    got = execute_onnx(model, {"q": q, "kt": kt})["s"]
    scale = 2.0 ** -fa.lsb_exponent
    want = np.rint(q.astype(np.float64) * scale).astype(np.int64) @ np.rint(kt.astype(np.float64) * scale).astype(
        np.int64)
    assert np.array_equal(got, want)


# --- dynamic_input (activation x activation, e.g. Q K^T): matrix stream per group ---------------------------------

DYN_CASES = [  # (input, weight, output, groups, vectors, MW, MH, PE, SIMD, noActivation)
    (F(3, 2), F(3, 2), F(3, 2), [2, 3], 4, 8, 6, 2, 4, 0),
    (F(4, 3), F(2, 3), F(4, 3), [2], 5, 16, 5, 5, 8, 1),
    (IntFormat(4), F(2, 1), IntFormat(8), [3], 2, 12, 8, 4, 3, 0),
    (F(2, 1), IntFormat(6), F(3, 2), [], 7, 6, 4, 1, 2, 1),
]


def _dyn_id(c):
    return f"{c[0].name}x{c[1].name}->{c[2].name}_g{'x'.join(map(str, c[3])) or 1}_v{c[4]}_{c[5]}x{c[6]}" \
           f"_pe{c[7]}_simd{c[8]}_noact{c[9]}"


def _run_dyn(model, x, w, mode):
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.custom_op.registry import getCustomOp

    from finn.transformation.fpgadataflow.compile_cppsim import CompileCppSim
    from finn.transformation.fpgadataflow.prepare_cppsim import PrepareCppSim
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
    from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    if mode is not None:
        getCustomOp(model.graph.node[0]).set_nodeattr("preferred_impl_style", "hls" if mode == "cppsim" else "rtl")
        model = model.transform(SpecializeLayers("xc7z020clg400-1"))
        if mode == "cppsim":
            model = model.transform(PrepareCppSim()).transform(CompileCppSim())
        else:
            model = model.transform(PrepareIP("xc7z020clg400-1", 10.0)).transform(PrepareRTLSim())
        model = model.transform(SetExecMode(mode))
    return execute_onnx(model, {"x": x, "W": w})["y"]


def _py_ints(values, fmt):
    """Format values -> exact Python ints of the integer domain (object array: formats beyond int64, e.g. E6M1)."""
    v = np.asarray(values, dtype=np.float64)
    return np.array([int(t) for t in np.rint(v * 2.0 ** -fmt.lsb_exponent).ravel()], dtype=object).reshape(v.shape)


def _random_dyn_case(rng):
    fa, fw, fo, mw, mh, pe, simd, no_act = _random_case(rng)
    mw, mh = min(mw, 64), min(mh, 32)
    pe = max(d for d in range(1, mh + 1) if mh % d == 0 and d <= pe)
    simd = max(d for d in range(1, mw + 1) if mw % d == 0 and d <= simd)
    groups = [int(g) for g in rng.integers(1, 4, size=int(rng.integers(0, 3)))]
    return fa, fw, fo, groups, int(rng.integers(1, 6)), mw, mh, pe, simd, no_act


# a random sample in the default suite (noActivation 0 and 1, 0-2 group dimensions), more in the slow grid
DYN_RANDOM = [_random_dyn_case(np.random.default_rng(200 + seed)) for seed in range(4)]


@needs_sim
@pytest.mark.parametrize("case", DYN_CASES + DYN_RANDOM, ids=_dyn_id)
def test_dynamic_input_cppsim_and_rtlsim_bit_exact(case):
    from custom_ops.examples import random_dynamic_mvau_model

    fa, fw, fo, groups, vecs, mw, mh, pe, simd, no_act = case
    results = {}
    for mode in (None, "cppsim", "rtlsim"):
        model, x, w = random_dynamic_mvau_model(fa, fw, fo, groups, vecs, mw, mh, pe, simd, no_act, seed=mw)
        results[mode] = np.asarray(_run_dyn(model, x, w, mode))
    # the golden itself against plain integer matmuls per group
    acc = np.matmul(_py_ints(x, fa), _py_ints(w, fw))
    if no_act:
        assert np.array_equal(results[None].astype(object), acc)
    else:
        t = model.get_initializer("T")
        counts = np.array([[sum(1 for th in t[h] if a[h] >= th) for h in range(mh)] for a in acc.reshape(-1, mh)])
        assert np.array_equal(results[None], fo.values()[counts].reshape(acc.shape))
    for mode in ("cppsim", "rtlsim"):
        assert results[mode].shape == results[None].shape
        assert np.array_equal(results[mode].astype(object), results[None].astype(object)), mode


DYN_GRID = [_random_dyn_case(np.random.default_rng(seed)) for seed in list(range(100, 112)) + list(range(204, 216))]


@pytest.mark.slow
@needs_sim
@pytest.mark.parametrize("case", DYN_GRID, ids=_dyn_id)
def test_random_dynamic_grid_cppsim_and_rtlsim_bit_exact(case):
    test_dynamic_input_cppsim_and_rtlsim_bit_exact(case)


def _dyn_inst(fa=F(3, 2), fw=F(2, 3), groups=(2, 3), vecs=4, mw=8, mh=6, pe=2, simd=4, no_act=0, style=None):
    from qonnx.custom_op.registry import getCustomOp

    from custom_ops.examples import random_dynamic_mvau_model

    model, x, w = random_dynamic_mvau_model(fa, fw, fa, list(groups), vecs, mw, mh, pe, simd, no_act, seed=3)
    return model, getCustomOp(model.graph.node[0]), x, w


def test_dynamic_matrix_stream_is_finns_dynamic_mode():
    """in1 width, folded shape and word count equal FINN's own MVAU in mem_mode "dynamic"; the words are the codes of
    W reshaped to that folded shape, PE per word, element 0 in the LSBs."""
    from qonnx.custom_op.registry import getCustomOp

    from custom_ops.codegen import codes_of

    fw = F(2, 3)
    model, inst, x, w = _dyn_inst(fw=fw)
    finn_node = helper.make_node("MVAU", ["x", "W"], ["y"], domain="finn.custom_op.fpgadataflow",
                                 backend="fpgadataflow", MW=8, MH=6, PE=2, SIMD=4, inputDataType="FLOAT<3,2,3>",
                                 weightDataType=fw.qonnx_name, outputDataType="INT32", noActivation=1,
                                 mem_mode="dynamic", numInputVectors=[2, 3, 4])
    finn = getCustomOp(finn_node)
    assert inst.get_instream_width(1) == finn.get_instream_width(1) == 2 * fw.bits
    assert inst.get_folded_input_shape(1) == finn.get_folded_input_shape(1) == (2, 3, 8, 3, 2)
    assert inst.get_folded_input_shape(0) == finn.get_folded_input_shape(0)
    assert inst.get_normal_input_shape(1) == (2, 3, 8, 6) == w.shape
    words = inst.dynamic_matrix_words(w)
    assert len(words) == inst.get_number_input_values(1) == 2 * 3 * 8 * 3
    assert inst.get_number_input_values(0) == 2 * 3 * 4 * 2
    codes = codes_of(w, fw).reshape(inst.get_folded_input_shape(1))
    for j, (g0, g1, k, nf) in enumerate(np.ndindex(2, 3, 8, 3)):
        assert words[j] == sum(int(codes[g0, g1, k, nf, p]) << (p * fw.bits) for p in range(2))
    intf = inst.get_verilog_top_module_intf_names()
    assert intf["s_axis"] == [("in0_V", 24), ("in1_V", 16)]
    static, _ = make_mvau_model(F(3, 2), F(3, 2), F(3, 2), 16, 8, 2, 4, 0)
    sinst = getCustomOp(static.graph.node[0])
    assert sinst.get_instream_width(1) == 0 and [n for n, _ in sinst.get_verilog_top_module_intf_names()["s_axis"]] \
        == ["in0_V"]
    with pytest.raises(UnsupportedNodeError, match="expected"):
        inst.dynamic_matrix_words(w[:1])


@needs_sim
def test_dynamic_rtlsim_cycles_match_the_estimate():
    """Full-rate streams (no stalls): rtlsim cycles = get_exp_cycles (matrix load MW*NF + vectors NF*SF per group)
    plus a pipeline latency of a few cycles; with random stalls it is slower and still bit exact."""
    from qonnx.custom_op.registry import getCustomOp

    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    model, inst, x, w = _dyn_inst(groups=(3,), vecs=5, mw=12, mh=8, pe=2, simd=3, no_act=1)
    want = inst.execute_python(x, w)
    inst.set_nodeattr("preferred_impl_style", "rtl")
    model = model.transform(SpecializeLayers("xc7z020clg400-1")).transform(PrepareIP("xc7z020clg400-1", 10.0))
    model = model.transform(PrepareRTLSim())
    rtl = getCustomOp(model.graph.node[0])
    exp = rtl.get_exp_cycles()
    assert exp == 3 * (12 * 4) + 3 * 5 * 4 * 4
    context = {rtl.onnx_node.input[0]: x, rtl.onnx_node.input[1]: w}
    got = rtl.run_rtlsim(context, gaps=False)
    assert np.array_equal(got.astype(object), want.astype(object))
    assert exp <= rtl.get_nodeattr("cycles_rtlsim") <= exp + 4
    got = rtl.run_rtlsim(context, gaps=True)
    assert np.array_equal(got.astype(object), want.astype(object))
    assert rtl.get_nodeattr("cycles_rtlsim") > exp + 4


def test_dynamic_estimates_buffer_one_matrix():
    """dynamic_input: no weight parameters, a buffer for one matrix (SIMD banks), matrix loading in the cycles, and
    a checked datatype on the matrix input."""
    from qonnx.transformation.infer_datatypes import InferDataTypes

    model, inst, _, _ = _dyn_inst(fa=F(4, 3), fw=F(4, 3), groups=(4,), vecs=16, mw=64, mh=256, pe=4, simd=8)
    nf, sf = 256 // 4, 64 // 8
    assert inst.get_exp_cycles() == 4 * 64 * nf + 4 * 16 * nf * sf
    counts = inst.get_op_and_param_counts()
    assert counts["op_mac_e4m3_e4m3"] == 4 * 16 * 64 * 256 and not any(k.startswith("param_weight") for k in counts)
    assert inst._weight_bits_total() == 64 * 256 * 8  # one matrix: 128 Kib, above the LUTRAM limit
    # 8 banks of 512 x 32 bits: one BRAM_18K (512 x 36) each; the static ROM would be 512 x 256 bits = 8 blocks
    assert inst.bram_estimation() == 8
    inst.set_nodeattr("ram_style", "distributed")
    assert inst.bram_estimation() == 0
    inst.set_nodeattr("ram_style", "ultra")
    assert inst.uram_estimation() == 8 and inst.bram_estimation() == 0
    inst.set_nodeattr("dynamic_input", 0)
    static_ff = inst.ff_estimation()
    inst.set_nodeattr("dynamic_input", 1)
    assert inst.ff_estimation() > static_ff
    model.set_tensor_datatype("W", IntFormat(8).datatype)
    with pytest.raises(UnsupportedNodeError, match="dynamic matrix input W is INT8"):
        model.transform(InferDataTypes())


def test_dynamic_hls_top_buffers_one_matrix_per_ram_style():
    """The HLS top declares the matrix buffer (SIMD banks of NF*SF words of PE codes), partitions the banks and binds
    them per ram_style; no weight constants are emitted."""
    from qonnx.custom_op.registry import getCustomOp

    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    model, inst, _, _ = _dyn_inst(fw=F(2, 3), mw=8, mh=6, pe=2, simd=4)
    inst.set_nodeattr("preferred_impl_style", "hls")
    model = model.transform(SpecializeLayers("xc7z020clg400-1"))
    hls = getCustomOp(model.graph.node[0])
    for style, pragma in (("auto", None), ("block", "impl=bram"), ("distributed", "impl=lutram"),
                          ("ultra", "impl=uram")):
        hls.set_nodeattr("ram_style", style)
        text = hls.top_text(model, "ipgen")
        assert "static ap_uint<12> wbuf[4][6];" in text and "variable=wbuf complete dim=1" in text
        assert ("BIND_STORAGE variable=wbuf" in text) == (pragma is not None)
        if pragma:
            assert pragma in text
        assert "weights[" not in text and "hls::stream<ap_uint<12> > &in1_V" in text


@needs_sim
@pytest.mark.parametrize("case", [CASES[0], CASES[3], (F(3, 2), F(3, 2), F(3, 2), 8, 4, 1, 1, 1),
                                  (F(3, 2), F(3, 2), F(3, 2), 4, 4, 4, 4, 0)], ids=_id)
def test_block_ram_weights_rtlsim_bit_exact_at_the_same_cycles(case):
    """ram_style "block": the weight ROM is read through the block RAM's register one step ahead (W_BLOCK); rtlsim
    equals Python with random stalls, and at full rate it takes the cycles of the LUT ROM (one word ahead, no
    extra cycle)."""
    from qonnx.custom_op.registry import getCustomOp

    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim

    fa, fw, fo, mw, mh, pe, simd, no_act = case
    cycles = {}
    for style in ("distributed", "block"):
        model, x = make_mvau_model(fa, fw, fo, mw, mh, pe, simd, no_act, seed=mw + 2, domain_suffix=".rtl")
        model.graph.node[0].op_type = "MinifloatMVAU_rtl"
        inst = getCustomOp(model.graph.node[0])
        inst.set_nodeattr("ram_style", style)
        assert inst._weight_storage() == ("bram" if style == "block" else "lutram")
        want = np.asarray(_run(model, x, None)).astype(object)
        model = model.transform(PrepareIP("xc7z020clg400-1", 10.0)).transform(PrepareRTLSim())
        rtl = getCustomOp(model.graph.node[0])
        context = {rtl.onnx_node.input[0]: x}
        for gaps in (True, False):
            assert np.array_equal(np.asarray(rtl.run_rtlsim(context, gaps=gaps)).astype(object), want), (style, gaps)
        cycles[style] = rtl.get_nodeattr("cycles_rtlsim")
    assert cycles["block"] == cycles["distributed"]
