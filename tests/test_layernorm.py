"""MinifloatLayerNorm: the exact-statistics LayerNorm contract; Python == g++ cppsim == Icarus rtlsim bit for bit;
close to the float island it replaces; InferMinifloatLayerNorm on the ViT."""

from math import isqrt

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model

import custom_ops  # noqa: F401
from compiler.errors import UnmappableLayerNormError
from compiler.numerics import IntFormat, MinifloatFormat
from passes.infer_layernorm import InferMinifloatLayerNorm

PART = "xc7z020clg400-1"
GENERAL = "custom_ops.general"


def island(fin, fout, d, rows, s_in, s_out, seed=0, eps=1e-5, axis=-1):
    """Dequantize -> LayerNormalization -> QuantizeToFormat, as the lowering leaves it."""
    rng = np.random.default_rng(seed)
    gamma = rng.normal(1.0, 0.5, size=d).astype(np.float32)
    gamma[0] = -abs(gamma[0])  # a negative gamma: channel sign
    beta = rng.normal(0.0, 0.3, size=d).astype(np.float32)
    nodes = [
        helper.make_node("Dequantize", ["x", "s_in"], ["xf"], domain=GENERAL, input_kind="values", name="deq"),
        helper.make_node("LayerNormalization", ["xf", "gamma", "beta"], ["y"], axis=axis, epsilon=eps, name="ln"),
        helper.make_node("QuantizeToFormat", ["y", "s_out"], ["q"], domain=GENERAL, format=fout.qonnx_name,
                         name="quant"),
    ]
    shape = [1, rows, d]
    graph = helper.make_graph(nodes, "ln", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("q", TensorProto.FLOAT, shape)])
    model = ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    for name, value in (("s_in", s_in), ("s_out", s_out), ("gamma", gamma), ("beta", beta)):
        model.set_initializer(name, np.asarray(value, dtype=np.float32))
    for name, fmt in (("x", fin), ("q", fout)):
        model.set_tensor_datatype(name, fmt.datatype if fmt.is_minifloat else DataType[f"INT{fmt.bits}"])
    model = model.transform(InferShapes())
    x = rng.choice(fin.values(), size=shape).astype(np.float32)
    return model, x


def reference_z(x_ints, eps_term, r_bits):
    """The contract, written out once more with Python ints, row by row."""
    out = []
    for row in x_ints:
        d = len(row)
        s1, s2 = sum(row), sum(a * a for a in row)
        v = d * s2 - s1 * s1 + eps_term
        e = v.bit_length() // 2
        r = isqrt((1 << (2 * (r_bits + e))) // v)
        out.append([((d * a - s1) * r) >> e for a in row])
    return out


CASES = [  # fin, fout, D, rows, PE
    (MinifloatFormat(3, 2), MinifloatFormat(3, 2), 16, 4, 4),
    (MinifloatFormat(4, 3), MinifloatFormat(4, 3), 64, 3, 8),
    (IntFormat(8), MinifloatFormat(2, 3), 12, 5, 3),
    (MinifloatFormat(2, 1), IntFormat(4), 8, 6, 1),
]


def _converted(case, seed=0):
    fin, fout, d, rows, pe = case
    model, x = island(fin, fout, d, rows, 0.07, 0.11, seed=seed)
    hw = model.transform(InferMinifloatLayerNorm())
    assert [n.op_type for n in hw.graph.node] == ["MinifloatLayerNorm"]
    getCustomOp(hw.graph.node[0]).set_nodeattr("PE", pe)
    return model, hw, x


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].name}->{c[1].name}_d{c[2]}_pe{c[4]}")
def test_golden_follows_the_contract_and_stays_close_to_float(case):
    model, hw, x = _converted(case)
    inst = getCustomOp(hw.graph.node[0])
    fin = case[0]
    ints = np.rint(np.ldexp(x.astype(np.float64), -fin.lsb_exponent)).astype(np.int64)
    z = np.array(reference_z([[int(a) for a in row] for row in ints.reshape(-1, case[2])],
                             inst.get_nodeattr("epsTerm"), inst.get_nodeattr("R")), dtype=object)
    assert np.array_equal(inst.normalized(x).reshape(z.shape), z)
    diffs = total = 0
    for seed in range(5):
        _, xs = island(*case[:2], case[2], case[3], 0.07, 0.11, seed=seed + 10)
        a, b = execute_onnx(model, {"x": xs})["q"], execute_onnx(hw, {"x": xs})["q"]
        diffs, total = diffs + int(np.sum(a != b)), total + a.size
    assert diffs <= 0.02 * total  # only codes next to a rounding boundary may move


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].name}->{c[1].name}_d{c[2]}_pe{c[4]}")
def test_cppsim_bit_exact(case):
    from finn.transformation.fpgadataflow.compile_cppsim import CompileCppSim
    from finn.transformation.fpgadataflow.prepare_cppsim import PrepareCppSim
    from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    _, hw, x = _converted(case)
    golden = execute_onnx(hw, {"x": x})["q"]
    getCustomOp(hw.graph.node[0]).set_nodeattr("preferred_impl_style", "hls")
    sim = hw.transform(SpecializeLayers(PART))
    assert sim.graph.node[0].op_type == "MinifloatLayerNorm_hls"
    sim = sim.transform(PrepareCppSim()).transform(CompileCppSim()).transform(SetExecMode("cppsim"))
    for seed in range(2):
        xs = x if seed == 0 else island(*case[:2], case[2], case[3], 0.07, 0.11, seed=77)[1]
        assert np.array_equal(execute_onnx(sim, {"x": xs})["q"], execute_onnx(hw, {"x": xs})["q"])
    assert np.array_equal(execute_onnx(sim, {"x": x})["q"], golden)


def test_unmappable_layernorm_is_a_clear_error():
    model, _ = island(MinifloatFormat(3, 2), MinifloatFormat(3, 2), 8, 2, 0.07, 0.11, axis=1)
    with pytest.raises(UnmappableLayerNormError, match="LayerNormalization node ln: normalizes from axis 1"):
        model.transform(InferMinifloatLayerNorm())
    assert model.transform(InferMinifloatLayerNorm(strict=False)).graph.node[1].op_type == "LayerNormalization"


def test_vit_layernorms_become_hardware_ops(tmp_path):
    import torch

    from compiler.export import export_qonnx_model
    from compiler.ptq import quantize_ptq
    from compiler.zoo import build_model
    from passes import lower_qonnx

    torch.manual_seed(0)
    cfg = dict(image_size=8, patch_size=4, dim=16, depth=1, heads=2)
    f, q = build_model("vit", "float", **cfg), build_model("vit", "fp:e3m2", **cfg)
    quantize_ptq(f, q, torch.randn(32, 1, 8, 8))
    low = lower_qonnx(export_qonnx_model(q, torch.randn(1, 1, 8, 8), tmp_path / "vit.onnx"))
    hw = low.transform(InferMinifloatLayerNorm())
    ops = [n.op_type for n in hw.graph.node]
    assert "LayerNormalization" not in ops and ops.count("MinifloatLayerNorm") == 3
    xs = np.random.default_rng(0).normal(size=(4, 1, 1, 8, 8)).astype(np.float32)
    agree = [np.argmax(execute_onnx(low, {"global_in": x})["global_out"]) ==
             np.argmax(execute_onnx(hw, {"global_in": x})["global_out"]) for x in xs]
    assert sum(agree) >= 3


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].name}->{c[1].name}_d{c[2]}_pe{c[4]}")
def test_rtlsim_bit_exact(case):
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
    from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    _, hw, x = _converted(case)
    sim = hw.transform(SpecializeLayers(PART))
    assert sim.graph.node[0].op_type == "MinifloatLayerNorm_rtl"
    sim = sim.transform(PrepareIP(PART, 10.0)).transform(PrepareRTLSim()).transform(SetExecMode("rtlsim"))
    for seed in range(2):
        xs = x if seed == 0 else island(*case[:2], case[2], case[3], 0.07, 0.11, seed=78)[1]
        assert np.array_equal(execute_onnx(sim, {"x": xs})["q"], execute_onnx(hw, {"x": xs})["q"])
    inst = getCustomOp(sim.graph.node[0])
    assert 0 < inst.get_nodeattr("cycles_rtlsim") <= 2 * inst.get_exp_cycles()


def test_layernorm_of_an_e6_input_is_a_clear_error():
    """E6M1 inputs make the epsilon term exceed the 64-bit epsTerm attribute: a clear error (strict), the island
    left in place otherwise (step_convert_to_hw then lists it), never a bare ONNX ValueError."""
    # a calibrated E6M1 scale: a max activation of ~6 over the format's max 1.5 * 2^32
    model, _ = island(MinifloatFormat(6, 1), MinifloatFormat(3, 2), 64, 2, 1e-9, 0.11)
    with pytest.raises(UnmappableLayerNormError, match="input format FLOAT<6,1,31> makes the epsilon term"):
        model.transform(InferMinifloatLayerNorm())
    assert model.transform(InferMinifloatLayerNorm(strict=False)).graph.node[1].op_type == "LayerNormalization"
