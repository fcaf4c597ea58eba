"""MinifloatMVAU's DSP48 datapath (use_dsp = 1): the bits of the LUT datapath (Python == cppsim == rtlsim on random
cases at 4/6/8-bit minifloat and integer formats), the DSP count of the packing plan, the folding's use_dsp choice
under mac_dsp and the board's DSP budget, and the config field reaching the nodes."""

import shutil

import numpy as np
import pytest
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp

import custom_ops  # noqa: F401  (registers the ops into FINN's registries)
from compiler.config import BuildConfig
from compiler.errors import ConfigError
from compiler.numerics import IntFormat, MinifloatFormat
from compiler.steps import _restrict_mac_dsp
from custom_ops.examples import random_dynamic_mvau_model, random_mvau_model
from custom_ops.mac import operand_params
from custom_ops.mac.packing import dsp_packing
from finn.transformation.fpgadataflow.compile_cppsim import CompileCppSim
from finn.transformation.fpgadataflow.prepare_cppsim import PrepareCppSim
from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
from passes.resource_folding import SetFoldingResourceAware

needs_sim = pytest.mark.skipif(shutil.which("iverilog") is None or shutil.which("g++") is None,
                               reason="needs g++ and iverilog (apt-get install g++ iverilog)")

F = MinifloatFormat
E2M1, E3M2, E4M3, INT4, INT8 = F(2, 1), F(3, 2), F(4, 3), IntFormat(4), IntFormat(8)
FORMATS = [E2M1, E3M2, E4M3, INT4, IntFormat(6), INT8, IntFormat(4, signed=False)]


def _random_case(seed):
    """(input, weight, output, MW, MH, PE, SIMD, noActivation, dsp_pack): 4/6/8-bit formats, PE a divisor of MH."""
    rng = np.random.default_rng(seed)
    fa, fw, fo = (FORMATS[int(rng.integers(len(FORMATS)))] for _ in range(3))
    mw, mh = int(rng.choice([8, 12, 16])), int(rng.choice([6, 8, 12]))
    pe = int(rng.choice([d for d in range(2, mh + 1) if mh % d == 0]))
    simd = int(rng.choice([d for d in range(1, mw + 1) if mw % d == 0 and d <= 4]))
    return fa, fw, fo, mw, mh, pe, simd, int(rng.random() < 0.3), int(rng.choice([0, 0, 2]))


CASES = [
    (E2M1, E2M1, E2M1, 16, 8, 8, 2, 0, 0), (E3M2, E3M2, E3M2, 12, 6, 6, 3, 0, 0),
    (E4M3, E4M3, E4M3, 16, 8, 4, 4, 0, 0), (INT4, INT4, INT4, 8, 8, 8, 2, 0, 0),
    (INT8, INT8, INT8, 8, 6, 3, 2, 1, 0), (INT8, E2M1, E4M3, 8, 4, 4, 4, 0, 0),
    (E4M3, E4M3, E3M2, 8, 6, 6, 2, 0, 2),
] + [_random_case(seed) for seed in range(5)]


def _id(c):
    return f"{c[0].name}x{c[1].name}->{c[2].name}_{c[3]}x{c[4]}_pe{c[5]}_simd{c[6]}_noact{c[7]}_pack{c[8]}"


def _set(model, **attrs):
    inst = getCustomOp(model.graph.node[0])
    for k, v in attrs.items():
        inst.set_nodeattr(k, v)
    return inst


def _run(model, inputs, mode):
    if mode == "cppsim":
        model = model.transform(PrepareCppSim()).transform(CompileCppSim())
    elif mode == "rtlsim":
        model = model.transform(PrepareIP("xc7z020clg400-1", 10.0)).transform(PrepareRTLSim())
    model = model.transform(SetExecMode(mode)) if mode else model
    return np.asarray(execute_onnx(model, inputs)["y"]).astype(object)


def _backend(model, mode, **attrs):
    """The node specialized to the backend of ``mode`` (cppsim: HLS, rtlsim: RTL) with ``attrs`` set."""
    _set(model, preferred_impl_style="hls" if mode == "cppsim" else "rtl", **attrs)
    return model.transform(SpecializeLayers("xc7z020clg400-1"))


@needs_sim
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_dsp_datapath_is_bit_exact(case):
    """use_dsp = 1: cppsim and rtlsim give the Python golden's bits (the golden does not read use_dsp)."""
    fa, fw, fo, mw, mh, pe, simd, no_act, pack = case
    plan = dsp_packing(operand_params(fa), operand_params(fw), pe, pack)
    golden, x = random_mvau_model(fa, fw, fo, mw, mh, pe, simd, no_act, seed=mw + mh)
    want = _run(golden, {"x": x}, None)
    for mode in ("cppsim", "rtlsim"):
        model, _ = random_mvau_model(fa, fw, fo, mw, mh, pe, simd, no_act, seed=mw + mh)
        model = _backend(model, mode, use_dsp=1, dsp_pack=pack)
        assert getCustomOp(model.graph.node[0]).dsp_estimation() == simd * plan.dsps_per_lane
        got = _run(model, {"x": x}, mode)
        assert got.shape == want.shape and np.array_equal(got, want), mode


@needs_sim
@pytest.mark.parametrize("fa,fw", [(E3M2, E3M2), (INT8, INT4)], ids=["e3m2", "int8xint4"])
def test_dsp_datapath_dynamic_input_is_bit_exact(fa, fw):
    """The dynamic-matrix MVAU (attention's Q.K^T) on the DSP48 datapath."""
    args = (fa, fw, fa, [2], 3, 8, 6, 6, 2, 0)
    model, x, w = random_dynamic_mvau_model(*args, seed=5)
    want = _run(model, {"x": x, "W": w}, None)
    for mode in ("cppsim", "rtlsim"):
        model, _, _ = random_dynamic_mvau_model(*args, seed=5)
        got = _run(_backend(model, mode, use_dsp=1), {"x": x, "W": w}, mode)
        assert np.array_equal(got, want), mode


def test_dsp_estimates():
    """DSPs: the plan's per SIMD lane, the LUT datapath none. INT8 products in DSP48s leave far fewer LUTs (Yosys at
    PE 2, SIMD 4: 2,758 LUTs -> 457 LUTs + 4 DSP48s, build_flows/measure_dsp_mac.py)."""
    model, _ = random_mvau_model(INT8, INT8, INT8, 32, 16, 4, 4, 1)
    inst = getCustomOp(model.graph.node[0])
    lut_only = inst.node_res_estimation("xc7z020clg400-1")
    inst.set_nodeattr("use_dsp", 1)
    dsp = inst.node_res_estimation("xc7z020clg400-1")
    assert lut_only["DSP"] == 0 and dsp["DSP"] == 4 * 2  # 4 PE channels, 2 INT8 products per DSP48
    assert dsp["LUT"] < 0.5 * lut_only["LUT"]
    inst.set_nodeattr("dsp_pack", 1)
    assert inst.dsp_estimation() == 16


def test_folding_space_follows_mac_dsp():
    model, _ = random_mvau_model(E4M3, E4M3, E4M3, 8, 4, 1, 1, 0)
    inst = getCustomOp(model.graph.node[0])
    assert {f["use_dsp"] for f in inst.folding_space()} == {0, 1}
    inst.set_nodeattr("mac_dsp", "lut")
    assert {f["use_dsp"] for f in inst.folding_space()} == {0}
    inst.set_nodeattr("mac_dsp", "dsp")
    assert {f["use_dsp"] for f in inst.folding_space()} == {1}
    model, _ = random_mvau_model(E3M2, E3M2, E3M2, 8, 4, 1, 1, 0)
    inst = getCustomOp(model.graph.node[0])  # PE = 1: a 4 x 4-bit product is no DSP48, so "auto" offers LUTs
    assert {(f["PE"], f["use_dsp"]) for f in inst.folding_space() if f["SIMD"] == 1} == {(1, 0), (2, 0), (2, 1),
                                                                                          (4, 0), (4, 1)}


BUDGET = {"LUT": 20000, "FF": 100000, "BRAM_18K": 100, "URAM": 0}


@pytest.mark.parametrize("dsps,mac_dsp,expect", [(0, "auto", 0), (220, "auto", 1), (220, "lut", 0)])
def test_resource_folding_balances_luts_and_dsps(dsps, mac_dsp, expect):
    """The fastest folding that fits: with the board's DSP48s the INT8 MACs go to DSPs (fewer LUTs per lane, so a
    faster folding fits: 24 instead of 192 cycles); without DSPs, or with mac_dsp = "lut", they stay in LUTs."""
    model, _ = random_mvau_model(INT8, INT8, INT8, 64, 32, 1, 1, 1)
    _set(model, mac_dsp=mac_dsp)
    model = model.transform(SetFoldingResourceAware({**BUDGET, "DSP": dsps}, 10.0))
    inst = getCustomOp(model.graph.node[0])
    assert inst.get_nodeattr("use_dsp") == expect
    assert inst.dsp_estimation() <= 0.8 * dsps and inst.lut_estimation() <= 0.8 * BUDGET["LUT"]
    assert inst.get_exp_cycles() == (24 if expect else 192)


def test_mac_dsp_config_reaches_the_nodes():
    with pytest.raises(ConfigError, match="mac_dsp"):
        BuildConfig(mac_dsp="maybe")
    model, _ = random_mvau_model(E4M3, E4M3, E4M3, 8, 4, 1, 1, 0)
    _restrict_mac_dsp(model, BuildConfig(mac_dsp="lut"))
    assert getCustomOp(model.graph.node[0]).get_nodeattr("mac_dsp") == "lut"
