"""torchvision's ``VisionTransformer`` (ViT-B/32's architecture, reduced: 32x32 input, 16x16 patches, one block,
two heads, width 32) quantized by ``compiler.ptq.quantize_model`` (``nn.MultiheadAttention`` -> Brevitas'
``QuantMultiheadAttention``): its export lowers exactly and maps to hardware with no unmappable node; built, Python
golden == rtlsim per node and stitched, bit for bit, and the hardware graph's logits equal the lowered graph's.

Brevitas' export form (per block): LayerNorm -> its quantizer -> Transpose(1, 0, 2) (sequence first: (L, 1, E)) ->
one packed MatMul (E x 3E) + bias Add -> three Slices (q, k, v) -> Reshape (L, H, d) -> Transpose (H, L, d) (K: (H, d,
L)) -> Div(sqrt d) on q -> q/k/v quantizers -> MatMul(q, k^T) -> softmax input quantizer -> Softmax -> quantizer ->
MatMul(attn, v) -> Transpose / Reshape (L, 1, E) -> out_proj quantizer -> MatMul + bias Add -> quantizer ->
Transpose back to (1, L, E) -> residual Add -> quantizer. Before the blocks: Conv -> quantizer -> Reshape ->
Transpose -> Concat(Expand(quantized class token), tokens) -> quantizer -> Add(quantized positional embedding) ->
quantizer; after them LayerNorm -> quantizer -> Gather(token 0) -> Gemm (the head).

What makes it map: the export's canonical form (passes/lower.py ``canonicalize``) puts the batch in front of the
sequence-first attention tensors (``LeadBatchAxis``: (1, L, 1, E) projections, (1, H, L, d) heads, as the zoo ViT) and
turns the class-token Concat into ``Pad(Q(tokens)) + Q(class token in its slot)`` (``HoistQuantizers``); the lowering
splits the packed in_proj into q/k/v products (``SplitSlicedLinear``) and keeps the slot fill as values, which
``MinifloatReorder`` produces with a constant slot. The quantizers the mapping relies on, all set by
``quantize_model``: Brevitas' q/k/v, softmax-input (its default is None) and attention-weight quantizers, the
LayerNorm, GELU and add inputs and outputs, the positional embedding's own quantizer, no bias quantizers.
"""

import copy
import json

import numpy as np
import pytest
import torch
from lowering_cases import Graph, lower_and_check_golden
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.fold_constants import FoldConstants
from qonnx.transformation.infer_shapes import InferShapes
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

import compiler.steps  # noqa: F401  (registers the steps)
from compiler.config import BuildConfig
from compiler.export import export_qonnx_model
from compiler.golden import batch_agnostic_problems, execute_qonnx
from compiler.hw_accuracy import built_hardware_graph, hardware_logits
from compiler.numerics import MinifloatFormat
from compiler.ptq import quantize_model
from compiler.runner import run_build
from passes import lower_qonnx
from passes.batch_axis import LeadBatchAxis, activation_tensors
from passes.compare import compare_lowered
from passes.convert_to_hw import ConvertToHardware, unmappable_nodes
from passes.fold_constants import FoldConstantSubgraphs
from passes.hoist_quantizers import HoistQuantizers
from passes.split_linear import SplitSlicedLinear

SHAPE = (3, 32, 32)
FORMATS = ("fp:e4m3", "fp:e3m2")


def _images(n, seed):
    return np.random.default_rng(seed).normal(size=(n, *SHAPE)).astype(np.float32)


def reduced_vit(seed=0):
    """A small torchvision ViT with random weights; class token, biases and LayerNorm parameters nonzero, so every
    path carries data."""
    torch.manual_seed(seed)
    model = VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64,
                              num_classes=10)
    with torch.no_grad():
        model.class_token.normal_(std=0.5)
        for m in model.modules():
            if isinstance(m, nn.MultiheadAttention):
                m.in_proj_bias.normal_(std=0.1)
                m.out_proj.bias.normal_(std=0.1)
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(std=0.1)
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{format: (Brevitas model, its QONNX export)}; first and last layer E4M3 (quantize_model's default)."""
    out = {}
    for fmt in FORMATS:
        model = quantize_model(reduced_vit(), weights=fmt, acts=fmt, calib=torch.from_numpy(_images(8, 1)))
        out[fmt] = (model, export_qonnx_model(model, _images(1, 2), tmp_path_factory.mktemp(fmt[3:]) / "vit.onnx"))
    return out


def _ops(model):
    return [n.op_type for n in model.graph.node]


def test_export_form_and_its_batch_agnostic_canonical_form(exported, tmp_path):
    model, qonnx = exported["fp:e4m3"]
    raw = export_qonnx_model(model, _images(1, 2), tmp_path / "raw.onnx", cleanup=False).transform(InferShapes())
    raw_ops = _ops(raw)
    # Brevitas' form: packed in_proj read in three slices, sequence-first transposes, the class token concatenated
    assert raw_ops.count("Slice") >= 3 and "Concat" in raw_ops and "Softmax" in raw_ops and "Div" in raw_ops
    assert any("batch axis" in p for p in batch_agnostic_problems(raw))
    ops = _ops(qonnx)
    assert batch_agnostic_problems(qonnx) == []
    assert "Concat" not in ops and "Pad" in ops and ops.count("Slice") == 3  # in_proj stays packed in the QONNX
    for node in qonnx.graph.node:  # every LayerNorm feeds its quantizer directly
        if node.op_type == "LayerNormalization":
            assert {c.op_type for c in qonnx.find_consumers(node.output[0])} == {"FloatQuant"}
    assert all(qonnx.get_tensor_shape(t)[0] == 1 for t in activation_tensors(qonnx))  # the batch first
    x = _images(3, 3)
    batched = execute_qonnx(qonnx, x, batch_size=3)
    per_image = np.concatenate([execute_qonnx(raw, x[i:i + 1], batch_size=1) for i in range(3)])
    np.testing.assert_allclose(batched, per_image, atol=1e-5, rtol=0)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(batched, ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("fmt", FORMATS)
def test_lowering_is_exact_and_every_node_maps(exported, fmt):
    _, qonnx = exported[fmt]
    low = lower_qonnx(qonnx)
    report = compare_lowered(qonnx, low, _images(4, 4), batch_size=4)
    assert report["differing_codes"] == 0 and report["argmax_agreement"] == 1.0, report
    low_ops = _ops(low)
    # conv_proj, q, k, v (in_proj split per slice), Q K^T, A V, out_proj, fc1, fc2, head
    assert low_ops.count("ExactMatMul") == 10 and "Slice" not in low_ops
    hw = low.transform(ConvertToHardware())
    assert unmappable_nodes(hw) == []
    kinds = set(_ops(hw))
    assert {"MinifloatMVAU", "MinifloatSoftmax", "MinifloatLayerNorm", "MinifloatLUT", "MinifloatAdd",
            "MinifloatReorder", "MinifloatThresholding", "MinifloatConvInpGen"} <= kinds
    slot = [getCustomOp(n) for n in hw.graph.node if n.op_type == "MinifloatReorder"
            and getCustomOp(n).get_nodeattr("constants")]
    assert len(slot) == 1  # the class token's slot in front of the patch tokens
    inst = slot[0]
    assert inst.n_outputs() == inst.n_elements() + 32
    fmt_obj = MinifloatFormat.parse(fmt[3:])
    assert set(inst.get_nodeattr("constants")) <= {float(v) for v in fmt_obj.values()}


def test_build_verifies_bit_exact_and_hardware_accuracy_equals_lowered(exported, tmp_path):
    _, qonnx = exported["fp:e4m3"]
    np.save(tmp_path / "x.npy", _images(2, 5))
    cfg = BuildConfig(output_dir=str(tmp_path / "build"), verify_input_npy=str(tmp_path / "x.npy"))
    run_build(qonnx, cfg, progress=False)
    ver = json.loads((tmp_path / "build" / "report" / "verification.json").read_text())
    assert ver["passed"] and ver["stitched_rtlsim"]["passed"] == 2 and ver["stitched_rtlsim"]["failed"] == 0
    assert all(v["mode"] == "rtlsim" and v["passed"] == 2 and v["failed"] == 0 for v in ver["nodes"].values())
    kinds = {k.rsplit("_", 1)[0] for k in ver["nodes"]}
    assert {"MinifloatMVAU_rtl", "MinifloatSoftmax_rtl", "MinifloatLayerNorm_rtl", "MinifloatLUT_rtl",
            "MinifloatAdd_rtl", "MinifloatReorder_rtl"} <= kinds
    assert ver["qonnx_vs_lowered"]["differing_codes"] == 0
    assert ver["lowered_vs_hardware"]["differing_codes"] == 0
    # hardware-exact accuracy: the built hardware graph's logits against the lowered graph's on more images
    x = _images(8, 6)
    labels = np.random.default_rng(7).integers(0, 10, size=8)
    low = compare_lowered(qonnx, lower_qonnx(qonnx), x, batch_size=8, labels=labels, keep_logits=True)
    hw = hardware_logits(built_hardware_graph(tmp_path / "build"), x, progress=False).reshape(8, -1)
    assert np.array_equal(hw, low["logits_lowered"])
    assert np.mean(hw.argmax(1) == labels) == low["accuracy_lowered"]


# --- the canonical-form passes on small graphs: what they rewrite and what they leave --------------------------------


def test_packed_projection_splits_per_slice_and_only_when_every_reader_is_a_slice():
    g = Graph(x=[1, 3, 8])
    x = g.quant("x", "xq", 0.5)
    acc = g.node("Add", [g.node("MatMul", [x, g.weight("w", [8, 12], [[0.125] * 4 + [0.25] * 8])], "mm"),
                         g.const("bias", np.linspace(-1, 1, 12))], "acc")
    parts = []
    for i, (lo, hi) in enumerate([(0, 4), (4, 12)]):
        s = g.node("Slice", [acc, g.const(f"s{i}", [lo], np.int64), g.const(f"e{i}", [hi], np.int64),
                             g.const(f"a{i}", [-1], np.int64)], f"slice{i}")
        parts.append(g.quant(s, f"p{i}", 0.25))
    g.node("Concat", parts, "y", axis=-1)
    model = g.model("y", [1, 3, 12])
    split = model.transform(SplitSlicedLinear())
    assert _ops(split).count("MatMul") == 2 and "Slice" not in _ops(split)
    low = lower_and_check_golden(model)
    assert sorted(low.get_initializer(n.input[1]).shape for n in low.graph.node if n.op_type == "ExactMatMul") == [
        (8, 4), (8, 8)]
    g.node("Relu", [acc], "other")  # a reader that is not a slice: the projection stays packed
    g.nodes[-1], g.nodes[-2] = g.nodes[-2], g.nodes[-1]
    unchanged = g.model("y", [1, 3, 12]).transform(SplitSlicedLinear())
    assert _ops(unchanged).count("MatMul") == 1 and _ops(unchanged).count("Slice") == 2


def test_quantizer_moves_up_to_a_float_island_unless_the_movement_has_other_readers():
    g = Graph(x=[1, 4, 6])
    sm = g.node("Softmax", [g.quant("x", "xq", 0.25)], "sm", axis=-1)
    g.quant(g.node("Transpose", [sm], "t", perm=[0, 2, 1]), "y", 2.0 ** -6)
    hoisted = g.model("y", [1, 6, 4]).transform(HoistQuantizers())
    assert _ops(hoisted) == ["FloatQuant", "Softmax", "FloatQuant", "Transpose"]
    low = lower_and_check_golden(g.model("y", [1, 6, 4]).transform(HoistQuantizers()))
    assert "Transpose" in _ops(low) and _ops(low).index("Softmax") + 2 == _ops(low).index("Transpose")
    g.node("Relu", ["t"], "other")  # the transposed float tensor has a second reader: nothing moves
    model = g.model("y", [1, 6, 4])
    assert _ops(model.transform(HoistQuantizers())) == _ops(model)


def test_batch_axis_lift_leaves_a_region_it_cannot_lift_unchanged():
    g = Graph(x=[1, 4, 6])
    t = g.node("Transpose", [g.quant("x", "xq", 0.25)], "t", perm=[1, 0, 2])  # (4, 1, 6): batch second
    g.node("Transpose", [g.node("ReduceMax", [t], "r", axes=[1], keepdims=1)], "y", perm=[1, 0, 2])
    model = g.model("y", [1, 4, 1])
    assert batch_agnostic_problems(model)
    assert _ops(model.transform(LeadBatchAxis())) == _ops(model)  # ReduceMax is not on its list
    g.nodes[-2] = helper.make_node("Relu", [t], ["r"], name="r")
    lifted = g.model("y", [1, 4, 6]).transform(LeadBatchAxis())
    assert batch_agnostic_problems(lifted) == [] and _ops(lifted).count("Reshape") == 2


def test_a_constant_that_overlaps_the_padded_data_is_an_exact_add_not_a_slot_fill():
    for slot_only in (True, False):
        g = Graph(x=[1, 3, 4])
        c = np.zeros((1, 4, 4), np.float32)
        c[0, 0] = [0.5, -1.0, 0.25, 1.5]
        if not slot_only:
            c[0, 2, 1] = 0.5  # a data position
        padded = g.node("Pad", [g.quant("x", "xq", 0.25), g.const("pads", [0, 1, 0, 0, 0, 0], np.int64)], "pad")
        g.quant(g.node("Add", [padded, g.quant(g.const("c", c), "cq", 0.25)], "sum"), "y", 0.25)
        low = lower_and_check_golden(g.model("y", [1, 4, 4]))
        sums = [n for n in low.graph.node if n.op_type == "ExactAdd" and len(n.input) == 2]
        assert bool(sums) != slot_only and ("Add" in _ops(low)) == slot_only


def test_one_sweep_constant_folding_equals_qonnx_folding_node_by_node(exported, tmp_path):
    """The export's constant folding (one sweep) gives qonnx' FoldConstants result on the attention export's
    Shape / Gather / Concat / Expand chains: the same nodes, the same constants (values and dtypes)."""
    model, _ = exported["fp:e4m3"]
    raw = export_qonnx_model(model, _images(1, 2), tmp_path / "raw.onnx", cleanup=False).transform(InferShapes())
    keep = ["FloatQuant", "Quant", "BipolarQuant", "Trunc"]
    for node in raw.graph.node:
        if node.op_type in keep:
            node.domain = "qonnx.custom_op.general"
    ours = ModelWrapper(copy.deepcopy(raw.model)).transform(FoldConstantSubgraphs(keep))
    theirs = raw.transform(FoldConstants(exclude_op_types=keep))
    assert _ops(ours) == _ops(theirs) and "Shape" not in _ops(ours) and len(_ops(ours)) < len(_ops(raw))
    for a, b in zip(ours.graph.node, theirs.graph.node):
        for ta, tb in zip(a.input, b.input):
            va, vb = ours.get_initializer(ta), theirs.get_initializer(tb)
            assert (va is None) == (vb is None)
            assert va is None or (va.dtype == vb.dtype and np.array_equal(va, vb))
