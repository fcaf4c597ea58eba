"""InferMinifloatMVAU and whole lowered networks on MinifloatMVAU: Python == cppsim == rtlsim, bit for bit."""

import numpy as np
import pytest
import torch
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp

from compiler.export import export_qonnx_model
from compiler.ptq import quantize_ptq
from compiler.zoo import build_model
from passes import lower_qonnx
from passes.infer_hw import InferMinifloatMVAU, mvau_nodes

FPGA_PART = "xc7z020clg400-1"
TINY = {"mlp": dict(in_features=64, hidden=(32, 16)), "cnn": dict(width=8, image_size=8)}


def lowered_zoo(model_name, spec, tmp_path, seed=0):
    torch.manual_seed(seed)
    cfg = TINY[model_name]
    f, q = build_model(model_name, "float", **cfg), build_model(model_name, spec, **cfg)
    quantize_ptq(f, q, torch.randn(64, 1, 8, 8))
    qonnx = export_qonnx_model(q, torch.randn(1, 1, 8, 8), tmp_path / f"{model_name}.onnx")
    return lower_qonnx(qonnx)


def _images(n, seed=1):
    return np.random.default_rng(seed).normal(size=(n, 1, 8, 8)).astype(np.float32)


def _outputs(model, xs):
    from passes.compare import execute_lowered  # accumulators beyond 62 bits are Python ints: no qonnx rounding check

    i, o = model.graph.input[0].name, model.graph.output[0].name
    return [execute_lowered(model, {i: x[None]})[o] for x in xs]


@pytest.mark.parametrize("model_name,spec", [("mlp", "fp:e3m2"), ("cnn", "w=fp:e2m1,a=fp:e4m3"), ("cnn", "int:4")])
def test_every_matmul_becomes_an_mvau_and_python_is_unchanged(model_name, spec, tmp_path):
    low = lowered_zoo(model_name, spec, tmp_path)
    hw = low.transform(InferMinifloatMVAU())
    ops = [n.op_type for n in hw.graph.node]
    assert "ExactMatMul" not in ops
    assert len(mvau_nodes(hw)) == (3 if model_name == "mlp" else 4)
    for a, b in zip(_outputs(low, _images(4)), _outputs(hw, _images(4))):
        assert np.array_equal(a, b)


def test_negative_channel_scale_negates_weight_column(tmp_path):
    from onnx import helper
    from qonnx.transformation.infer_shapes import InferShapes
    from test_passes import linear_graph  # noqa: E402  (hand-built graph helper)

    model = linear_graph(bias=False, relu=False)
    g = model.graph
    mul = helper.make_node("Mul", ["mm", "neg"], ["scaled"], name="neg_mul")
    qy = [n for n in g.node if n.name == "qy"][0]
    qy.input[0] = "scaled"
    g.node.insert(list(g.node).index(qy), mul)
    model.set_initializer("neg", np.asarray([1.0, -1.0, 0.5, -2.0], dtype=np.float32))
    low = lower_qonnx(model.transform(InferShapes()))
    hw = low.transform(InferMinifloatMVAU())
    node = mvau_nodes(hw)[0]
    w_low = [low.get_initializer(n.input[1]) for n in low.graph.node if n.op_type == "ExactMatMul"][0]
    w_hw = hw.get_initializer(node.input[1])
    assert np.array_equal(w_hw[:, [0, 2]], w_low[:, [0, 2]]) and np.array_equal(w_hw[:, [1, 3]], -w_low[:, [1, 3]])
    xs = np.random.default_rng(0).normal(size=(30, 1, 8)).astype(np.float32)
    for x in xs:
        assert np.array_equal(execute_onnx(low, {"x": x})["y"], execute_onnx(hw, {"x": x})["y"])


def _simulate(hw, style):
    from compiler.boards import get_board
    from finn.transformation.fpgadataflow.compile_cppsim import CompileCppSim
    from finn.transformation.fpgadataflow.prepare_cppsim import PrepareCppSim
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
    from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from passes.resource_folding import SetFoldingResourceAware

    for node in mvau_nodes(hw):
        getCustomOp(node).set_nodeattr("preferred_impl_style", style)
    hw = hw.transform(SpecializeLayers(FPGA_PART))
    # every MVAU at its cheapest folding for <= 2000 cycles per frame (the host-side nodes are not folded)
    hw = hw.transform(SetFoldingResourceAware(get_board("U250").resources, 10.0, target_fps=1e9 / (10.0 * 2000)))
    if style == "hls":
        hw = hw.transform(PrepareCppSim()).transform(CompileCppSim()).transform(SetExecMode("cppsim"))
    else:
        hw = hw.transform(PrepareIP(FPGA_PART, 10.0)).transform(PrepareRTLSim()).transform(SetExecMode("rtlsim"))
    return hw


# the whole networks' HLS (cppsim) runs are slow (every node compiled with g++); each op's cppsim is in the default
# suite in its own test module, the whole networks there in RTL
@pytest.mark.parametrize("model_name,spec,style", [
    pytest.param("mlp", "fp:e3m2", "hls", marks=pytest.mark.slow), ("mlp", "fp:e3m2", "rtl"),
    pytest.param("cnn", "w=fp:e2m1,a=fp:e3m2", "hls", marks=pytest.mark.slow), ("cnn", "w=fp:e2m1,a=fp:e3m2", "rtl"),
    # E6M1: ~130-bit accumulators, thresholds beyond int64 (stored as decimal strings, ap_int string constants)
    pytest.param("mlp", "fp:e6m1", "hls", marks=pytest.mark.slow), ("mlp", "fp:e6m1", "rtl"),
])
def test_whole_network_cppsim_and_rtlsim_bit_exact(model_name, spec, style, tmp_path):
    from custom_ops.general.common import threshold_ints

    low = lowered_zoo(model_name, spec, tmp_path)
    hw = low.transform(InferMinifloatMVAU())
    if spec == "fp:e6m1":
        assert all(getCustomOp(n).acc_bits() > 64 for n in mvau_nodes(hw))
        assert any(threshold_ints(hw.get_initializer(n.input[2])).dtype == object for n in mvau_nodes(hw)
                   if len(n.input) > 2)
    hw = _simulate(hw, style)
    kinds = {n.op_type for n in mvau_nodes(hw)}
    assert kinds == {f"MinifloatMVAU_{style}"}
    folded = [getCustomOp(n) for n in mvau_nodes(hw)]
    assert any(f.get_nodeattr("PE") * f.get_nodeattr("SIMD") > 1 for f in folded)
    xs = _images(2)
    for a, b in zip(_outputs(low, xs), _outputs(hw, xs)):
        assert np.array_equal(a, b)
    if style == "rtl":  # the Icarus testbench ran and counted cycles for every node
        assert all(getCustomOp(n).get_nodeattr("cycles_rtlsim") > 0 for n in mvau_nodes(hw))
    else:
        assert all(getCustomOp(n).get_nodeattr("executable_path") for n in mvau_nodes(hw))


def test_attention_products_become_dynamic_mvaus_and_simulate_bit_exactly(tmp_path):
    """ViT: Q K^T and A V (activation x activation) -> MinifloatMVAU dynamic_input=1; the whole graph with every
    MVAU in Icarus rtlsim equals the lowered Python graph."""
    from compiler.export import export_qonnx_model
    from compiler.ptq import quantize_ptq
    from compiler.zoo import build_model

    torch.manual_seed(0)
    cfg = dict(image_size=8, patch_size=4, dim=16, depth=1, heads=2)
    f, q = build_model("vit", "float", **cfg), build_model("vit", "fp:e3m2", **cfg)
    quantize_ptq(f, q, torch.randn(32, 1, 8, 8))
    low = lower_qonnx(export_qonnx_model(q, torch.randn(1, 1, 8, 8), tmp_path / "vit.onnx"))
    static_only = low.transform(InferMinifloatMVAU())
    hw = low.transform(InferMinifloatMVAU(dynamic=True))
    assert "ExactMatMul" in [n.op_type for n in static_only.graph.node]
    assert "ExactMatMul" not in [n.op_type for n in hw.graph.node]
    dyn = [n for n in mvau_nodes(hw) if getCustomOp(n).get_nodeattr("dynamic_input")]
    assert len(dyn) == 2  # Q K^T and A V of the one block
    assert [getCustomOp(n).get_nodeattr("numInputVectors") for n in dyn] == [[1, 2, 4], [1, 2, 4]]
    xs = _images(2)
    ref = _outputs(low, xs)
    for a, b in zip(ref, _outputs(hw, xs)):
        assert np.array_equal(a, b)
    sim = _simulate(hw, "rtl")
    for a, b in zip(ref, _outputs(sim, xs)):
        assert np.array_equal(a, b)
    assert all(getCustomOp(n).get_nodeattr("cycles_rtlsim") > 0 for n in mvau_nodes(sim))
