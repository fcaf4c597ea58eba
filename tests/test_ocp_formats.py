"""OCP minifloats (FP8 E4M3 max 448, E5M2 max 57344; FP6 E2M3 / E3M2 and FP4 E2M1 full range) as formats with a
reduced maximum: numerics against Brevitas' own quantizers, the quantizer checks and their all-at-once refusals, the
three requantizer styles in Python, rtlsim and cppsim, and user CNNs with Brevitas' stock OCP quantizers built with
``minifinn build`` and verified (QONNX == lowered == every node's rtlsim == the stitched rtlsim, bit for bit)."""

import json
import runpy
import warnings

import numpy as np
import pytest
import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.utils.float_quant_utils import get_max_available_float
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.util.basic import get_by_name
from requant_cases import fraction_reference, requant_model
from test_readme_examples import readme_example

import custom_ops  # noqa: F401
from compiler.build_cmd import main as build_main
from compiler.errors import FormatError, UnsupportedNodeError
from compiler.export import export_qonnx_model
from compiler.numerics import MinifloatFormat, parse_format, tie_rounds_up
from compiler.qonnx_formats import format_from_datatype, qonnx_datatype, quantizer_format
from custom_ops.general.common import threshold_ints
from finn.transformation.fpgadataflow.compile_cppsim import CompileCppSim
from finn.transformation.fpgadataflow.prepare_cppsim import PrepareCppSim
from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
from passes import lower_qonnx

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from brevitas.quant.experimental.float_quant_ocp import (
        Fp8e4m3OCPActPerTensorFloat,
        Fp8e4m3OCPWeightPerTensorFloat,
        Fp8e5m2OCPActPerTensorFloat,
        Fp8e5m2OCPWeightPerTensorFloat,
        FpOCPActPerTensorFloat,
    )

E4M3, E5M2 = MinifloatFormat.ocp(4, 3), MinifloatFormat.ocp(5, 2)
OCP = {"e4m3": (E4M3, Fp8e4m3OCPWeightPerTensorFloat, Fp8e4m3OCPActPerTensorFloat),
       "e5m2": (E5M2, Fp8e5m2OCPWeightPerTensorFloat, Fp8e5m2OCPActPerTensorFloat)}
PART = "xc7z020clg400-1"


# --- numerics ------------------------------------------------------------------------------------------------------
def test_ocp_fp8_value_sets_and_maxima():
    assert E4M3.max == 448.0 == float(get_max_available_float(4, 3, 7, ("111",), None, True))
    assert E5M2.max == 57344.0 == float(get_max_available_float(5, 2, 15, ("01", "11", "10"), ("00",), True))
    for fmt, reserved in ((E4M3, 1), (E5M2, 4)):  # S.1111.111 (NaN); exponent 31 (inf, NaN)
        full = MinifloatFormat(fmt.exponent_bits, fmt.mantissa_bits)
        assert fmt.reduced and not full.reduced and fmt != full
        want = full.values()[np.abs(full.values()) <= fmt.max]
        assert np.array_equal(fmt.values(), want)
        assert len(fmt.values()) == len(full.values()) - 2 * reserved
        assert fmt.max_code == 2 ** (fmt.bits - 1) - 1 - reserved
        assert fmt.decode([fmt.max_code])[0] == fmt.max and fmt.encode([fmt.max, -fmt.max]).tolist() == [
            fmt.max_code, fmt.max_code | 2 ** (fmt.bits - 1)]
        with pytest.raises(FormatError, match="not representable"):
            fmt.encode([full.max])
        assert fmt.datatype == full.datatype  # tensors are annotated with the container FLOAT<e,m,b>
    assert (E4M3.name, E4M3.qonnx_name) == ("e4m3max448", "FLOAT<4,3,7,448>")
    assert (E5M2.name, E5M2.qonnx_name) == ("e5m2max57344", "FLOAT<5,2,15,57344>")
    for text in ("ocp:e4m3", "e4m3max448", "FLOAT<4,3,7,448>", "fp:e4m3max448"):
        assert parse_format(text) == E4M3
    assert parse_format("ocp:e5m2") == E5M2 == format_from_datatype("FLOAT<5,2,15,57344>")
    assert qonnx_datatype("FLOAT<4,3,7,448>") == DataType["FLOAT<4,3,7>"] and qonnx_datatype("INT4") == DataType["INT4"]
    assert repr(E4M3) == "MinifloatFormat(4, 3, exponent_bias=7, max_value=448)"
    with pytest.raises(FormatError, match="not a positive value"):
        MinifloatFormat(4, 3, max_value=450)


def test_ocp_fp6_fp4_are_full_range():
    for (e, m), top in {(2, 3): 7.5, (3, 2): 28.0, (2, 1): 6.0}.items():
        fmt = MinifloatFormat.ocp(e, m)
        assert not fmt.reduced and fmt.max == top == MinifloatFormat(e, m).max
        assert fmt.max == float(get_max_available_float(e, m, 2 ** (e - 1) - 1, None, None, True))


def test_top_midpoint_ties_round_to_even_below_the_reduced_max():
    mids, up = tie_rounds_up(E4M3)
    assert float(mids[-1]) == 432.0 and up[-1]  # 416 (code 125) | 448 (code 126, even)
    assert E4M3.quantize([431.99, 432, 447, 449, 464, 465, 1e6, -1e6]).tolist() == [
        416, 448, 448, 448, 448, 448, 448, -448]


@pytest.mark.parametrize("kind", sorted(OCP))
def test_quantize_matches_brevitas_ocp_quantizers(kind):
    """Random tensors, many beyond the maximum: Brevitas' stock OCP quantizer and ``quantize`` agree bit for bit."""
    fmt, wq, aq = OCP[kind]
    torch.manual_seed(1)
    act = QuantIdentity(act_quant=aq, return_quant_tensor=True)
    act.eval()
    with torch.no_grad():
        act(torch.randn(64, 32))  # calibrates the scale
        x = torch.randn(256, 32) * torch.logspace(-6, 3, 32)
        q = act(x)
    scale = q.scale.detach().numpy().astype(np.float32)
    mine = fmt.quantize(x.numpy(), scale)
    assert np.array_equal(mine, q.value.numpy())
    top = np.abs(mine / scale).max()
    assert np.isclose(top, fmt.max)  # saturated at the reduced maximum
    lin = QuantLinear(32, 16, bias=False, weight_quant=wq)
    with torch.no_grad():
        lin.weight.mul_(torch.logspace(-4, 0, 32))
    qw = lin.quant_weight()
    mine = fmt.quantize(lin.weight.detach().numpy(), qw.scale.detach().numpy())
    assert np.array_equal(mine, qw.value.detach().numpy())


# --- quantizer checks ------------------------------------------------------------------------------------------------
def _cnn(kind, seed=0):
    """2 convs + linear. The E5M2 one quantizes its logits too: its raw last accumulator has 70 bits, beyond the
    host driver's integer streams (at most 62 bits)."""
    _, wq, aq = OCP[kind]
    torch.manual_seed(seed)
    tail = [QuantIdentity(act_quant=aq)] if kind == "e5m2" else []
    model = torch.nn.Sequential(
        QuantIdentity(act_quant=aq), QuantConv2d(1, 4, 3, bias=False, weight_quant=wq), QuantReLU(act_quant=aq),
        QuantConv2d(4, 4, 3, bias=False, weight_quant=wq), QuantReLU(act_quant=aq), torch.nn.Flatten(),
        QuantLinear(4 * 4 * 4, 10, bias=False, weight_quant=wq), *tail)
    model.eval()
    with torch.no_grad():
        model(torch.randn(32, 1, 8, 8))
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = {}
    for kind in OCP:
        path = tmp_path_factory.mktemp(kind) / "model.qonnx.onnx"
        export_qonnx_model(_cnn(kind), torch.randn(1, 1, 8, 8), str(path))
        out[kind] = (_cnn(kind), path)
    return out


@pytest.mark.parametrize("kind", sorted(OCP))
def test_ocp_quantizers_export_as_reduced_formats(exported, kind):
    model = ModelWrapper(str(exported[kind][1]))
    quants = model.get_nodes_by_op_type("FloatQuant")
    assert len(quants) == 6 + (kind == "e5m2")
    for node in quants:
        assert get_by_name(node.attribute, "has_nan").i == 1
        assert quantizer_format(model, node) == OCP[kind][0]
    recorded = json.loads(model.get_metadata_prop("minifinn_formats"))
    assert set(recorded.values()) == {OCP[kind][0].qonnx_name}


def test_refusals_list_every_offending_quantizer_with_the_fix(exported):
    model = ModelWrapper(str(exported["e5m2"][1]))
    names = []
    for node in model.get_nodes_by_op_type("FloatQuant")[:3]:
        get_by_name(node.attribute, "saturation").i = 0
        names.append(node.name)
    with pytest.raises(UnsupportedNodeError) as info:
        lower_qonnx(model)
    msg = str(info.value)
    assert msg.startswith("3 quantizers are not supported")
    assert all(name in msg for name in names) and msg.count("saturating=True") == 3
    assert "has_inf=1, has_nan=1" in msg


def test_max_val_off_the_grid_is_refused(exported):
    model = ModelWrapper(str(exported["e4m3"][1]))
    node = model.get_nodes_by_op_type("FloatQuant")[0]
    model.set_initializer(node.input[5], np.float32(450.0))
    with pytest.raises(UnsupportedNodeError, match=f"{node.name}: max_val=450.0 .*a value of the format"):
        quantizer_format(model, node)


# --- requantizers ----------------------------------------------------------------------------------------------------
STYLES = ("parallel", "bsearch", "convert")
#: (format, channels, PE, accumulator bits, relu, scale-mantissa bits)
CASES = [(E4M3, 4, 2, 28, 0, 16), (E5M2, 4, 4, 40, 1, 16)]


def _ids(case):
    return f"{case[0].name}_acc{case[3]}"


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_requant_styles_saturate_at_the_reduced_max(case):
    fmt, c, pe, bits, relu, s = case
    outs = {}
    for style in STYLES:
        model, acc = requant_model(fmt, c, pe, bits, (3, 7), style, relu, 5, s)
        outs[style] = execute_onnx(model, {"acc": acc})["y"]
        assert getCustomOp(model.graph.node[0]).n_thresholds() == len(fmt.values()) - 1
    want = fraction_reference(acc, threshold_ints(model.get_initializer("P")), relu, fmt)
    for style in STYLES:
        assert np.array_equal(outs[style], want), style
    assert np.abs(want).max() == fmt.max and np.sum(np.abs(want) == fmt.max) > 4


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_requant_rtlsim_and_cppsim_bit_exact(style, case):
    fmt, c, pe, bits, relu, s = case
    model, acc = requant_model(fmt, c, pe, bits, (3, 7), style, relu, 5, s)
    golden = execute_onnx(model, {"acc": acc})["y"]
    assert np.abs(golden).max() == fmt.max
    rtl = model.transform(SpecializeLayers(PART)).transform(PrepareIP(PART, 10.0)).transform(PrepareRTLSim())
    assert np.array_equal(execute_onnx(rtl.transform(SetExecMode("rtlsim")), {"acc": acc})["y"], golden)
    model, acc = requant_model(fmt, c, pe, bits, (3, 7), style, relu, 5, s)
    getCustomOp(model.graph.node[0]).set_nodeattr("preferred_impl_style", "hls")
    hls = model.transform(SpecializeLayers(PART)).transform(PrepareCppSim()).transform(CompileCppSim())
    assert np.array_equal(execute_onnx(hls.transform(SetExecMode("cppsim")), {"acc": acc})["y"], golden)


# --- user CNNs with Brevitas' stock OCP quantizers --------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(OCP))
def test_user_cnn_with_ocp_quantizers_builds_and_verifies(exported, tmp_path, kind):
    fmt = OCP[kind][0]
    model, path = exported[kind]
    x = (np.random.default_rng(0).normal(size=(3, 1, 8, 8)) * 40).astype(np.float32)
    with torch.no_grad():  # the inputs drive the input quantizer to its reduced maximum
        q = model[0].act_quant(torch.from_numpy(x))
    assert np.isclose(float((q[0] / q[1]).abs().max()), fmt.max)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out"
    assert build_main([str(path), "--board", "Pynq-Z2", "--output-dir", str(out), "--verify-input",
                       str(tmp_path / "x.npy")]) == 0
    report = json.loads((out / "report" / "verification.json").read_text())
    assert report["passed"] and report["qonnx_vs_lowered"]["differing_codes"] == 0
    assert report["lowered_vs_hardware"]["differing_codes"] == 0 and report["stitched_rtlsim"]["failed"] == 0
    assert all(node["mode"] == "rtlsim" and node["failed"] == 0 for node in report["nodes"].values())
    hw = ModelWrapper(str(out / "intermediate_models" / "step_hw_codegen.onnx"))
    # the convolutions' requantizers (standalone, each in the style the folding chose) produce the reduced format
    requant = [n for n in hw.graph.node if n.op_type.startswith("MinifloatThresholding")]
    assert [getCustomOp(n).get_nodeattr("outputDataType") for n in requant[:2]] == [fmt.qonnx_name] * 2
    assert getCustomOp(requant[0]).output_format().values().size == len(fmt.values())


def test_fp6_fp4_ocp_quantizers_are_plain_minifloats(tmp_path):
    e2m3 = FpOCPActPerTensorFloat.let(bit_width=6, exponent_bit_width=2, mantissa_bit_width=3, exponent_bias=1)
    e2m1 = FpOCPActPerTensorFloat.let(bit_width=4, exponent_bit_width=2, mantissa_bit_width=1, exponent_bias=1)
    model = torch.nn.Sequential(QuantIdentity(act_quant=e2m3), torch.nn.Flatten(),
                                QuantLinear(16, 4, bias=False, weight_quant=Fp8e4m3OCPWeightPerTensorFloat),
                                QuantIdentity(act_quant=e2m1))
    model.eval()
    with torch.no_grad():
        model(torch.randn(8, 1, 4, 4))
    qmodel = export_qonnx_model(model, torch.randn(1, 1, 4, 4), str(tmp_path / "m.onnx"))
    fmts = {quantizer_format(qmodel, n) for n in qmodel.get_nodes_by_op_type("FloatQuant")}
    assert fmts == {MinifloatFormat(2, 3), MinifloatFormat(2, 1), E4M3}


def test_readme_ocp_example_exports_and_builds(tmp_path, monkeypatch):
    script = tmp_path / "example.py"
    script.write_text(readme_example("ocp-quantizers"))
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        runpy.run_path(str(script), run_name="__main__")
    model = ModelWrapper(str(tmp_path / "my_ocp_model.qonnx.onnx"))
    assert {quantizer_format(model, n) for n in model.get_nodes_by_op_type("FloatQuant")} == {E4M3}
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(2, 1, 8, 8)).astype(np.float32))
    assert build_main(["my_ocp_model.qonnx.onnx", "--board", "Pynq-Z2", "--output-dir", str(tmp_path / "out"),
                       "--verify-input", "x.npy"]) == 0
