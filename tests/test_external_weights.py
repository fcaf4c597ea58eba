"""Weights off chip: MinifloatMVAU mem_mode "external" (Python == cppsim == rtlsim with the weights on in1, FINN's
external weight stream), the board's memory bandwidth in the folding and the reports, and which nodes the compiler
streams (weights_off_chip)."""

import shutil

import numpy as np
import pytest
from onnx import helper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp

import custom_ops  # noqa: F401  (registers the ops into FINN's registries)
from compiler.errors import UnsupportedNodeError
from compiler.numerics import IntFormat, MinifloatFormat
from custom_ops.codegen import codes_of
from custom_ops.examples import random_mvau_model
from finn.transformation.fpgadataflow.compile_cppsim import CompileCppSim
from finn.transformation.fpgadataflow.insert_iodma import InsertIODMA
from finn.transformation.fpgadataflow.prepare_cppsim import PrepareCppSim
from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

F = MinifloatFormat
PART = "xc7z020clg400-1"
needs_sim = pytest.mark.skipif(shutil.which("iverilog") is None or shutil.which("g++") is None,
                               reason="needs g++ and iverilog (apt-get install g++ iverilog)")


def external_model(fa, fw, fo, mw, mh, pe, simd, no_act, n_vec=2, seed=0, suffix=""):
    """One MinifloatMVAU (``suffix`` "" / "_hls" / "_rtl") with mem_mode "external"; returns (model, x)."""
    model, x = random_mvau_model(fa, fw, fo, mw, mh, pe, simd, no_act, n_vec=n_vec, seed=seed,
                                 domain_suffix=suffix.replace("_", "."))
    node = model.graph.node[0]
    node.op_type += suffix
    getCustomOp(node).set_nodeattr("mem_mode", "external")
    return model, x


def _run(model, x, mode):
    if mode == "cppsim":
        model = model.transform(PrepareCppSim()).transform(CompileCppSim())
    elif mode == "rtlsim":
        model = model.transform(PrepareIP(PART, 10.0)).transform(PrepareRTLSim())
    if mode:
        model = model.transform(SetExecMode(mode))
    return np.asarray(execute_onnx(model, {"x": x})["y"])


def test_weight_stream_is_finns_external_mode():
    """in1 width, folded shape and words per frame equal FINN's MVAU in mem_mode "external"; the words are what
    FINN's InsertIODMA puts into the weight DMA's memory (``get_mem_init``, packed as FINN packs it), once per input
    vector; no weight memory on chip, the traffic per frame is the matrix once per vector."""
    fa, fw = F(3, 2), F(2, 3)
    model, _ = external_model(fa, fw, fa, 12, 8, 4, 3, 1, n_vec=5)
    inst = getCustomOp(model.graph.node[0])
    finn = getCustomOp(helper.make_node(
        "MVAU", ["x", "W"], ["y"], domain="finn.custom_op.fpgadataflow", backend="fpgadataflow", MW=12, MH=8, PE=4,
        SIMD=3, inputDataType="INT8", weightDataType=f"UINT{fw.bits}", outputDataType="INT32", noActivation=1,
        mem_mode="external", numInputVectors=[5]))
    assert inst.get_instream_width(1) == finn.get_instream_width(1) == 4 * 3 * fw.bits
    assert inst.get_folded_input_shape(1) == finn.get_folded_input_shape(1) == (5, 2 * 4, 12)
    assert inst.get_number_input_values(1) == 5 * 2 * 4
    w = model.get_initializer("W")
    mem = InsertIODMA.get_mem_init(None, codes_of(w, fw).astype(np.float32), 4, 3)  # FINN's weight DMA memory
    finn_words = [int(sum(int(v) << (fw.bits * (11 - k)) for k, v in enumerate(row))) for row in mem]
    assert inst.matrix_words(w) == finn_words
    assert inst.external_weight_words(w, 5) == finn_words * 5
    assert [n for n, _ in inst.get_verilog_top_module_intf_names()["s_axis"]] == ["in0_V", "in1_V"]
    assert inst.weight_memory_bits() == 0 and inst.bram_estimation() == 0 and inst.uram_estimation() == 0
    assert inst.external_weight_bits() == 5 * 12 * 8 * fw.bits
    assert inst.get_op_and_param_counts()[f"param_weight_{fw.name}"] == 12 * 8
    inst.set_nodeattr("ram_style", "auto")
    assert {tuple(sorted(f)) for f in inst.folding_space()} == {("PE", "SIMD", "use_dsp")}  # no ROM to place


def test_external_weights_need_static_weights_of_an_mvau():
    model, _ = external_model(F(3, 2), F(3, 2), F(3, 2), 8, 4, 2, 2, 1)
    inst = getCustomOp(model.graph.node[0])
    inst.set_nodeattr("dynamic_input", 1)
    with pytest.raises(UnsupportedNodeError, match="mem_mode 'external' needs static weights"):
        inst.get_instream_width(1)
    vvau = getCustomOp(helper.make_node("MinifloatVVAU", ["x", "W"], ["y"], domain="finn.custom_op.fpgadataflow",
                                        MW=9, MH=4, inputDataType="INT4", weightDataType="INT4",
                                        outputDataType="INT16", noActivation=1))
    assert not vvau.external_weights_capable()
    with pytest.raises(UnsupportedNodeError, match="static weights"):
        vvau.set_external_weights(True)


def _random_case(rng, weight_kind):
    """A random case with minifloat or integer weights, a random folding and 1-3 input vectors."""
    if weight_kind == "int":
        fw = IntFormat(int(rng.integers(3, 9)))
    else:
        bits = int(rng.integers(4, 9))
        e = int(rng.integers(2, bits - 1))
        fw = F(e, bits - 1 - e)
    fa = F(3, 2) if rng.random() < 0.5 else IntFormat(4)
    mw, mh = int(rng.choice([6, 8, 12, 16])), int(rng.choice([4, 6, 8]))
    pe = int(rng.choice([d for d in range(1, mh + 1) if mh % d == 0]))
    simd = int(rng.choice([d for d in range(1, mw + 1) if mw % d == 0]))
    return fa, fw, fa, mw, mh, pe, simd, int(rng.random() < 0.5), int(rng.integers(1, 4))


CASES = ([(F(4, 3), F(4, 3), F(4, 3), 16, 8, 2, 4, 0, 3), (IntFormat(4), IntFormat(4), IntFormat(4), 12, 6, 3, 2, 1, 2)]
         + [_random_case(np.random.default_rng(seed), kind) for seed, kind in ((1, "fp"), (2, "int"))])


def _id(c):
    return f"{c[0].name}x{c[1].name}_{c[3]}x{c[4]}_pe{c[5]}_simd{c[6]}_noact{c[7]}_vec{c[8]}"


@needs_sim
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_external_weights_cppsim_and_rtlsim_bit_exact(case):
    """The weights stream on in1 (the testbenches feed the matrix once per vector, with random stalls on every
    stream in rtlsim); Python (W from the initializer) == cppsim == rtlsim, bit for bit."""
    fa, fw, fo, mw, mh, pe, simd, no_act, n_vec = case
    out = {}
    for suffix, mode in (("", None), ("_hls", "cppsim"), ("_rtl", "rtlsim")):
        model, x = external_model(fa, fw, fo, mw, mh, pe, simd, no_act, n_vec=n_vec, seed=mw + mh, suffix=suffix)
        out[mode] = _run(model, x, mode)
    for mode in ("cppsim", "rtlsim"):
        assert out[mode].shape == out[None].shape
        assert np.array_equal(out[mode].astype(object), out[None].astype(object)), mode


@needs_sim
def test_external_rtlsim_cycles_are_the_embedded_ones():
    """At full rate on every stream, the external-weights node takes the embedded node's cycles (one weight word per
    step) plus a few cycles of latency; the HLS top reads the weights from in1_V and has no weight table."""
    model, x = external_model(F(3, 2), F(2, 1), F(3, 2), 12, 8, 2, 3, 1, n_vec=3)
    inst = getCustomOp(model.graph.node[0])
    want = inst.execute_python(x, model.get_initializer("W"))
    inst.set_nodeattr("preferred_impl_style", "rtl")
    model = model.transform(SpecializeLayers(PART)).transform(PrepareIP(PART, 10.0)).transform(PrepareRTLSim())
    rtl = getCustomOp(model.graph.node[0])
    exp = rtl.get_exp_cycles()
    assert exp == 3 * 4 * 4
    got = rtl.run_rtlsim({"x": x, "W": model.get_initializer("W")}, gaps=False)
    assert np.array_equal(got.astype(object), want.astype(object))
    assert exp <= rtl.get_nodeattr("cycles_rtlsim") <= exp + 4
    hls_model, _ = external_model(F(3, 2), F(2, 1), F(3, 2), 12, 8, 2, 3, 1, n_vec=3, suffix="_hls")
    hls = getCustomOp(hls_model.graph.node[0])
    top = hls.top_text(hls_model, "ipgen")
    assert "minifloat_mvau_ext<" in top and f"hls::stream<ap_uint<{2 * 3 * F(2, 1).bits}> > &in1_V" in top
    assert "weights[" not in top and "BIND_STORAGE" not in top
