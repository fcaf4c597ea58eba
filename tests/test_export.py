"""QONNX export of the zoo: quantizer nodes and formats survive, golden qonnx execution equals Brevitas."""

import json
from collections import Counter

import numpy as np
import pytest
import torch
from brevitas.graph.calibrate import calibration_mode
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.infer_shapes import InferShapes

from compiler.errors import MinifinnError, UnsupportedNodeError
from compiler.export import ExportError, compare_with_brevitas, export_qonnx_model
from compiler.golden import GoldenExecutionError, batch_agnostic_problems, execute_qonnx, with_batch_size
from compiler.qonnx_formats import FORMATS_METADATA_KEY, quantizer_format, quantizer_nodes, recorded_formats
from compiler.zoo import act_quant, build_model, weight_quant

TINY = {
    "mlp": dict(in_features=64, hidden=(32, 32)),
    "cnn": dict(width=8, image_size=8),
    "vit": dict(image_size=8, patch_size=2, dim=16, depth=1, heads=2),
    "vit_cls": dict(image_size=8, patch_size=2, dim=16, depth=1, heads=2, pooling="cls"),
}
SPECS = {
    "e4m3": "fp:e4m3",
    "e3m2": "fp:e3m2",
    "e2m1": "fp:e2m1",
    "int8": "int:8",
    "int4": "int:4",
    "w_e2m1_a_e3m2": "w=fp:e2m1,a=fp:e3m2",
    "first_last_8bit": "w=fp:e2m1,a=fp:e3m2,first=fp:e4m3,last=fp:e4m3",
    "int_first_last_8bit": "w=int:4,a=int:4,first=int:8,last=int:8",
    "float": "float",
}
# the spec grid for MLP/CNN, nearly all of it for ViT(gap), two for ViT(cls) (a ViT export takes ~1-2 s)
CASES = ([(m, s) for m in ("mlp", "cnn") for s in SPECS] + [("vit", s) for s in SPECS if s != "int_first_last_8bit"]
         + [("vit_cls", s) for s in ("e3m2", "first_last_8bit")])
# tolerance on |logit difference|: fp32 summation-order noise (measured <= 2.4e-7 on these models)
ATOL = 1e-5


def _inputs():
    """16 real 8x8 sklearn digits and 16 random images (both in the calibration range)."""
    from sklearn.datasets import load_digits

    digits = torch.tensor(load_digits().images[:16] / 16.0, dtype=torch.float32).unsqueeze(1)
    gen = torch.Generator().manual_seed(0)
    noise = torch.rand(16, 1, 8, 8, generator=gen)
    return torch.cat([digits, noise])


_CACHE = {}


def _exported(name, spec_key, tmp_path_factory):
    """Build, calibrate and export (cached per module run: several tests inspect the same export)."""
    key = (name, spec_key)
    if key not in _CACHE:
        torch.manual_seed(0)
        model = build_model("vit" if name.startswith("vit") else name, SPECS[spec_key], **TINY[name])
        x = _inputs()
        model.eval()
        with torch.no_grad(), calibration_mode(model):
            model(x)
        path = tmp_path_factory.mktemp("export") / f"{name}_{spec_key}.onnx"
        qmodel = export_qonnx_model(model, x[:1], path)
        _CACHE[key] = (model, qmodel, path, x)
    return _CACHE[key]


def _quant_sites_formats(model):
    return Counter(s["format"] for s in model.quant_sites.values() if s["format"] != "float")


@pytest.mark.parametrize("name, spec_key", CASES)
def test_export_keeps_every_quantizer_and_matches_brevitas(name, spec_key, tmp_path_factory):
    model, qmodel, path, x = _exported(name, spec_key, tmp_path_factory)
    ops = Counter(n.op_type for n in qmodel.graph.node)
    n_quant = ops["FloatQuant"] + ops["Quant"]
    n_sites = sum(1 for s in model.quant_sites.values() if s["format"] != "float")
    # one quantizer node per quantized site: with the tiny ViT that is 28 (gap) / 27 (cls), the 14 per-block
    # attention/MLP/residual activation quantizers included
    assert n_quant == n_sites
    if name == "vit" and spec_key != "float":
        assert n_quant == 28
    if spec_key.startswith("int"):
        assert ops["FloatQuant"] == 0
    # recorded formats: one per quantizer output, same multiset as the model's sites, also in the saved file
    formats = recorded_formats(qmodel)
    assert len(formats) == n_quant
    assert Counter(formats.values()) == _quant_sites_formats(model)
    assert formats == json.loads(ModelWrapper(str(path)).get_metadata_prop(FORMATS_METADATA_KEY))
    for tensor in formats:
        assert qmodel.find_producer(tensor).op_type in ("FloatQuant", "Quant")
    # golden execution
    result = compare_with_brevitas(model, qmodel, x, batch_size=16)
    assert result["num_samples"] == 32
    assert result["max_abs_diff"] <= ATOL, result
    assert result["argmax_agreement"] == 1.0, result


@pytest.mark.parametrize("name", ["mlp", "cnn", "vit", "vit_cls"])
def test_every_weight_quantizer_survives_cleanup(name, tmp_path_factory):
    model, qmodel, _, _ = _exported(name, "first_last_8bit", tmp_path_factory)
    rows = quantizer_nodes(qmodel)
    weights = [r for r in rows if r["kind"] == "weight"]
    weight_sites = [s for s in model.quant_sites.values() if s["kind"] == "weight"]
    # + the ViT's positional embedding: a constant behind an activation quantizer
    assert len(weights) == len(weight_sites) + (1 if name.startswith("vit") else 0)
    assert all(r["op_type"] == "FloatQuant" for r in weights)
    expected = Counter(s["format"] for s in weight_sites)
    if name.startswith("vit"):
        expected["FLOAT<3,2,3>"] += 1  # pos_quant: an activation-format site
    assert Counter(r["format"] for r in weights) == expected
    assert expected["FLOAT<4,3,7>"] == 2 and expected["FLOAT<2,1,1>"] == len(weight_sites) - 2  # first/last 8-bit
    # weight quantizers read a constant, and no Transpose is left on a weight path
    for r in weights:
        assert qmodel.get_initializer(r["input"]) is not None
        assert all(c.op_type != "Transpose" for c in qmodel.find_consumers(r["output"]))
    # shapes are inferred everywhere (cleanup ran)
    assert qmodel.check_all_tensor_shapes_specified()


def test_qonnx_cleanup_folds_weight_quantizers_ours_keeps_them(tmp_path_factory):
    """Why export_qonnx_model has its own cleanup: qonnx's cleanup_model folds the weight FloatQuants away."""
    from qonnx.util.cleanup import cleanup_model

    model, qmodel, _, x = _exported("mlp", "e3m2", tmp_path_factory)
    raw = export_qonnx_model(model, x[:1], tmp_path_factory.mktemp("raw") / "raw.onnx", cleanup=False)
    folded = cleanup_model(raw)
    count = lambda m: sum(n.op_type == "FloatQuant" for n in m.graph.node)  # noqa: E731
    assert count(raw) == count(qmodel) == 6
    assert count(folded) == 3  # only the activation quantizers are left


def test_fold_weights_keeps_recorded_names(tmp_path_factory):
    model, qmodel, _, x = _exported("vit", "e3m2", tmp_path_factory)
    folded = export_qonnx_model(model, x[:1], tmp_path_factory.mktemp("fold") / "f.onnx", fold_weights=True)
    formats = recorded_formats(folded)
    assert formats == recorded_formats(qmodel)
    weights = [r["output"] for r in quantizer_nodes(qmodel) if r["kind"] == "weight"]
    assert len(weights) == 9
    assert not any(r["kind"] == "weight" for r in quantizer_nodes(folded))
    for tensor in weights:  # the folded weights are initializers under the recorded names
        assert folded.get_initializer(tensor) is not None
    assert compare_with_brevitas(model, folded, x)["max_abs_diff"] <= ATOL
    with pytest.raises(ExportError, match="fold_weights=True needs cleanup=True"):
        export_qonnx_model(model, x[:1], tmp_path_factory.mktemp("bad") / "b.onnx", cleanup=False, fold_weights=True)


def test_quant_mha_quantizers_survive_export(tmp_path):
    """Brevitas' QuantMultiheadAttention: the dynamo exporter drops (or fails on) its quantizers; our export
    (dynamo=False) keeps all 10, and its canonical form (passes/batch_axis.py lifts the sequence-first attention, which
    transposes the batch axis) is batch-agnostic: it executes in batches."""
    from brevitas.nn import QuantMultiheadAttention

    a, w = act_quant("fp:e3m2"), weight_quant("fp:e3m2")

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = QuantMultiheadAttention(
                8, 2, batch_first=True, in_proj_input_quant=a, in_proj_weight_quant=w, in_proj_bias_quant=None,
                softmax_input_quant=a, attn_output_weights_quant=a, q_scaled_quant=a, k_transposed_quant=a,
                v_quant=a, out_proj_input_quant=a, out_proj_weight_quant=w, out_proj_bias_quant=None,
                out_proj_output_quant=a)

        def forward(self, x):
            return self.mha(x, x, x, need_weights=False)[0]

    torch.manual_seed(0)
    model = M().eval()
    x = torch.randn(3, 5, 8)
    with torch.no_grad(), calibration_mode(model):
        model(x)
    qmodel = export_qonnx_model(model, x[:1], tmp_path / "mha.onnx")
    assert sum(n.op_type == "FloatQuant" for n in qmodel.graph.node) == 10
    assert batch_agnostic_problems(qmodel) == []
    assert with_batch_size(qmodel, 3).get_tensor_shape(qmodel.graph.output[0].name) == [3, 5, 8]
    result = compare_with_brevitas(model, qmodel, x, batch_size=3)  # one batch of 3
    assert result["max_abs_diff"] <= ATOL and result["num_samples"] == 3
    raw = export_qonnx_model(model, x[:1], tmp_path / "raw.onnx", cleanup=False)  # Brevitas' own form
    assert any("batch axis" in p for p in batch_agnostic_problems(raw.transform(InferShapes())))
    with pytest.raises(GoldenExecutionError, match="cannot change the batch size"):
        with_batch_size(raw.transform(InferShapes()), 3)


def test_execute_qonnx_batching_is_consistent(tmp_path_factory):
    model, qmodel, path, x = _exported("cnn", "e2m1", tmp_path_factory)
    assert batch_agnostic_problems(qmodel) == []
    x = x[8:20]  # digits and noise
    full = execute_qonnx(qmodel, x, batch_size=12)
    for bs in (1, 5):  # 5: the last chunk is zero-padded
        np.testing.assert_allclose(execute_qonnx(str(path), x.numpy(), batch_size=bs), full, atol=ATOL, rtol=0)
    assert execute_qonnx(qmodel, x[:3], batch_size=64).shape == (3, 10)


def test_execute_qonnx_errors(tmp_path_factory):
    _, qmodel, _, x = _exported("mlp", "e3m2", tmp_path_factory)
    with pytest.raises(GoldenExecutionError, match=r"input shape \(2, 1, 4, 4\) does not match the model input"):
        execute_qonnx(qmodel, np.zeros((2, 1, 4, 4), np.float32))
    with pytest.raises(GoldenExecutionError, match="does not exist"):
        execute_qonnx("/nonexistent/model.onnx", x)
    with pytest.raises(GoldenExecutionError, match="batch_size must be a positive integer"):
        execute_qonnx(qmodel, x, batch_size=0)
    assert issubclass(ExportError, MinifinnError) and issubclass(GoldenExecutionError, MinifinnError)


def test_quantizer_format_rejects_unsupported_floatquant(tmp_path_factory):
    from qonnx.util.basic import get_by_name

    _, qmodel, _, _ = _exported("mlp", "e3m2", tmp_path_factory)
    model = ModelWrapper(qmodel.model.SerializeToString())
    node = next(n for n in model.graph.node if n.op_type == "FloatQuant")
    assert quantizer_format(model, node).qonnx_name == "FLOAT<3,2,3>"
    get_by_name(node.attribute, "has_inf").i = 1  # saturating: the inf encodings are reserved, never produced
    assert quantizer_format(model, node).qonnx_name == "FLOAT<3,2,3>"
    get_by_name(node.attribute, "saturation").i = 0
    with pytest.raises(UnsupportedNodeError, match=rf"FloatQuant {node.name}: saturation=0 \(has_inf=1\)"):
        quantizer_format(model, node)
    get_by_name(node.attribute, "saturation").i = 1
    get_by_name(node.attribute, "has_inf").i = 0
    model.set_initializer(node.input[5], np.array(16.0, dtype=np.float32))  # a value of E3M2: a reduced maximum
    assert quantizer_format(model, node).qonnx_name == "FLOAT<3,2,3,16>"
    model.set_initializer(node.input[5], np.array(17.0, dtype=np.float32))
    with pytest.raises(UnsupportedNodeError, match="max_val=17.0 but FLOAT<3,2,3> reaches 28.0"):
        quantizer_format(model, node)
