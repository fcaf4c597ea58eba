"""quantize_model: any float torch model to a Brevitas model with the paper's recipe, exported and lowered exactly.

The networks are the reduced torchvision ones of build_flows/paper_nets.py (torchvision's classes, narrow) and the
zoo's float models; the checks are on the recipe (where the quantizers sit, which formats), the export and the
lowering (QONNX golden == lowered graph code for code, nothing left unmapped)."""

import brevitas.nn as qnn
import numpy as np
import pytest
import torch
from torch import nn

from build_flows.paper_nets import torchvision_network
from compiler.export import compare_with_brevitas, export_qonnx_model
from compiler.ptq import QuantizeModelError, quantize_model
from compiler.quantize_model import eight_bit_default
from compiler.zoo import build_model
from passes import lower_qonnx
from passes.compare import compare_lowered
from passes.convert_to_hw import ConvertToHardware, unmappable_nodes

#: ops whose output holds a quantizer's values (looked through when checking that an input is quantized)
PASS_THROUGH = {"MaxPool", "Flatten", "Reshape", "Transpose", "Expand", "Slice", "Gather", "Squeeze", "Unsqueeze"}


def _quantized_input(model, tensor):
    producer = model.find_producer(tensor)
    while producer is not None and producer.op_type in PASS_THROUGH:
        producer = model.find_producer(producer.input[0])
    return producer is None and model.get_initializer(tensor) is None or (
        producer is not None and producer.op_type == "FloatQuant")


def _quantize_and_export(model, shape, tmp_path, **kw):
    torch.manual_seed(0)
    x = torch.randn(8, *shape)
    q = quantize_model(model, calib=x, **kw)
    return q, export_qonnx_model(q, x[:1], tmp_path / "model.onnx"), x


def _lowers_exactly(qonnx, shape, n=4):
    """The lowered graph's codes equal QONNX's (fp32 golden execution: a sum within fp32 rounding of a rounding tie
    of a quantizer may take the other code, so a few per million may differ), nothing stays unmapped."""
    low = lower_qonnx(qonnx)
    xs = np.random.default_rng(1).normal(size=(n, *shape)).astype(np.float32)
    report = compare_lowered(qonnx, low, xs)
    assert report["differing_fraction"] < 1e-5 and report["argmax_agreement"] == 1.0, report
    assert unmappable_nodes(low.transform(ConvertToHardware())) == []
    return low


def test_resnet_recipe_every_product_add_and_pool_reads_a_quantizer(tmp_path):
    q, qonnx, x = _quantize_and_export(torchvision_network("resnet18", 48, 10, reduced=True), (3, 48, 48), tmp_path,
                                       weights="fp:e3m2", acts="fp:e3m2")
    sites = q.quant_sites
    assert sites["conv1"] == {"kind": "weight", "role": "first", "format": "FLOAT<4,3,7>"}  # 8-bit first layer
    assert sites["fc"] == {"kind": "weight", "role": "last", "format": "FLOAT<4,3,7>"}
    assert sites["layer1.0.conv1"]["format"] == "FLOAT<3,2,3>" and sites["x_quant"]["role"] == "first"
    last_inputs = [k for k, v in sites.items() if v == {"kind": "act", "role": "last", "format": "FLOAT<4,3,7>"}]
    assert last_inputs == ["avgpool_quant"]  # the head's input: the pooled values, 8-bit
    assert all(isinstance(q.get_submodule(f"layer1.0.{n}"), qnn.QuantReLU) for n in ("relu", "relu_1"))
    checked = 0
    for node in qonnx.graph.node:
        if node.op_type in ("Conv", "Gemm", "MatMul", "Add", "MaxPool", "GlobalAveragePool"):
            dynamic = [t for t in node.input[:2 if node.op_type == "Add" else 1] if qonnx.get_initializer(t) is None]
            assert all(_quantized_input(qonnx, t) for t in dynamic), node.name
            checked += 1
    assert checked == 12 + 1 + 4 + 2  # convs (incl. 3 downsampling), the head, 4 residual adds, 2 pools
    assert sum(n.op_type == "Add" for n in qonnx.graph.node) == 4
    assert compare_with_brevitas(q, qonnx, x[:2], batch_size=1)["max_abs_diff"] < 1e-4
    _lowers_exactly(qonnx, (3, 48, 48))


def test_mobilenet_depthwise_residual_and_relu6(tmp_path):
    model = torchvision_network("mobilenet_v2", 32, 10, reduced=True)
    q, qonnx, _ = _quantize_and_export(model, (3, 32, 32), tmp_path)
    assert not any(isinstance(m, nn.ReLU6) for m in q.modules())  # Brevitas' PTQ preprocessing: ReLU6 -> ReLU
    convs = [n for n in qonnx.graph.node if n.op_type == "Conv"]
    assert any(n.attribute and any(a.name == "group" and a.i > 1 for a in n.attribute) for n in convs)
    assert sum(n.op_type == "Add" for n in qonnx.graph.node) == 1
    low = _lowers_exactly(qonnx, (3, 32, 32))
    assert "Clip" not in [n.op_type for n in low.graph.node]
    kept = quantize_model(model, calib=torch.randn(4, 3, 32, 32), relu6_to_relu=False)
    assert sum(isinstance(m, nn.ReLU6) for m in kept.modules()) == 7


def test_vit_attention_becomes_quant_multihead_attention_and_exports(tmp_path):
    model = torchvision_network("vit_b_32", 32, 10, reduced=True)
    q, qonnx, x = _quantize_and_export(model, (3, 32, 32), tmp_path, weights="fp:e3m2", acts="fp:e3m2")
    mha = q.get_submodule("encoder.layers.encoder_layer_0.self_attention")
    assert isinstance(mha, qnn.QuantMultiheadAttention) and mha.batch_first
    assert {"conv_proj": "first", "heads.head": "last"} == {
        k: v["role"] for k, v in q.quant_sites.items() if v["kind"] == "weight" and v["role"] != "body"}
    types = [n.op_type for n in qonnx.graph.node]
    # 10 in the attention, input, patch embedding, class token, position embedding, concat, embedding add, LN/GELU
    # inputs, residual adds, head input, and 6 weights
    assert types.count("FloatQuant") >= 25 and "Softmax" in types and "LayerNormalization" in types
    assert compare_with_brevitas(q, qonnx, x[:1], batch_size=1)["max_abs_diff"] < 1e-4


@pytest.mark.parametrize("name,cfg,shape", [("cnn", dict(width=4, image_size=8), (1, 8, 8)),
                                            ("mlp", dict(in_features=16, hidden=(8, 8)), (16,)),
                                            ("vit", dict(dim=16, depth=1, heads=2, patch_size=7, pooling="cls"),
                                             (1, 28, 28))])
def test_zoo_float_models(name, cfg, shape, tmp_path):
    """The zoo's float models (Brevitas layers with every quantizer off, the MLP checks its input width in forward)
    become torch layers and are quantized like any model; the ViT's class token and positional embedding (constant
    expressions) are quantized as a whole where they meet the tokens."""
    torch.manual_seed(0)
    q, qonnx, _ = _quantize_and_export(build_model(name, "float", **cfg), shape, tmp_path, weights="int:4",
                                       acts="int:4")
    roles = {v["role"] for v in q.quant_sites.values()}
    assert roles == {"first", "body", "last"} and q.quant_sites["x_quant"]["format"] == "INT8"
    _lowers_exactly(qonnx, shape)


def test_eight_bit_defaults():
    assert [eight_bit_default(f) for f in ("fp:e3m2", "e2m1", "ocp:e5m2", "int:4", "int4", "float")] == [
        "fp:e4m3", "fp:e4m3", "ocp:e4m3", "int:8", "int:8", "float"]


def test_errors_name_the_problem():
    model = torchvision_network("resnet18", 48, 10, reduced=True)
    x = torch.randn(2, 3, 48, 48)
    with pytest.raises(QuantizeModelError, match="body format.*unknown number format 'fp8'"):
        quantize_model(model, weights="fp8", calib=x)
    with pytest.raises(QuantizeModelError, match="needs calibration inputs"):
        quantize_model(model)

    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.act, self.up = nn.Conv2d(3, 4, 3), nn.SiLU(), nn.Upsample(scale_factor=2)

        def forward(self, x):
            return self.up(self.act(self.conv(x))) * torch.sigmoid(x.mean())

    with pytest.raises(QuantizeModelError, match=r"4 layer\(s\) outside the recipe: act \(SiLU\), up \(Upsample\), "
                                                 r"sigmoid \(sigmoid\), mul \(mul\); supported: Conv1d/2d"):
        quantize_model(Odd(), calib=torch.randn(1, 3, 8, 8))
    quantized = build_model("cnn", "fp:e3m2", width=4, image_size=8)
    with pytest.raises(QuantizeModelError, match="already quantized at .*input_quant"):
        quantize_model(quantized, calib=torch.randn(1, 1, 8, 8))
    assert torch.equal(model(x), model(x))  # the float model is not changed
    assert not any(isinstance(m, qnn.QuantConv2d) for m in model.modules())
