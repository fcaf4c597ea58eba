"""The batched executor of hardware graphs (compiler/batched_exec.py): every tensor of a batched run equals qonnx
``execute_onnx`` image by image, bit for bit, for the MLP, the CNN and small ViTs (the converted hardware graph, its
specialized partition and the dataflow parent); the hardware-exact accuracy's batched logits equal the per-image
executor's; wrong inputs are clear errors."""

import copy

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.util.basic import qonnx_make_model

from compiler.batched_exec import BatchedGraph, BatchShapeError
from compiler.dse.cost import hardware_graph
from compiler.errors import UnsupportedNodeError
from compiler.export import export_qonnx_model
from compiler.hw_accuracy import hardware_exact_accuracy, hardware_logits, hardware_logits_per_image
from compiler.ptq import quantize_ptq
from compiler.zoo import build_model
from finn.transformation.fpgadataflow.create_dataflow_partition import CreateDataflowPartition
from passes import lower_qonnx
from passes.compare import execute_lowered

MODELS = {
    "mlp": ("mlp", "fp:e3m2", dict(in_features=64, hidden=(32, 16))),
    "mlp_wide_acc": ("mlp", "fp:e5m2", dict(in_features=64, hidden=(16,))),  # accumulators beyond 62 bits
    "cnn": ("cnn", "w=fp:e3m2,a=fp:e3m2,first=fp:e4m3,last=fp:e4m3", dict(width=8, image_size=8)),
    "vit": ("vit", "fp:e3m2", dict(image_size=8, in_channels=1, patch_size=4, dim=16, depth=1, heads=2, mlp_ratio=2,
                                    num_classes=10, pooling="gap")),
    "vit_cls": ("vit", "fp:e3m2", dict(image_size=8, in_channels=1, patch_size=4, dim=16, depth=1, heads=2,
                                       mlp_ratio=2, num_classes=10, pooling="cls")),
}


def _images(n, seed=1):
    return np.random.default_rng(seed).normal(size=(n, 1, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def hw_graphs(tmp_path_factory):
    """{name: (converted hardware graph, its specialized (RTL) version, the dataflow parent)}."""
    out = {}
    for key, (name, spec, cfg) in MODELS.items():
        tmp = tmp_path_factory.mktemp(key)
        torch.manual_seed(0)
        f, q = build_model(name, "float", **cfg), build_model(name, spec, **cfg)
        quantize_ptq(f, q, torch.randn(64, 1, 8, 8))
        qonnx = export_qonnx_model(q, torch.randn(1, 1, 8, 8), tmp / f"{key}.onnx")
        hw, specialized = hardware_graph(lower_qonnx(qonnx))  # the build's step_convert_to_hw, specialized
        parent = hw.transform(CreateDataflowPartition(partition_model_dir=str(tmp / "partitions")))
        out[key] = (hw, specialized, parent)
    return out


def _per_image(model, x):
    name = model.graph.input[0].name
    return [execute_lowered(model, {name: image[None]}, return_full_exec_context=True) for image in x]


def _assert_same_contexts(graph, batched, reference):
    for i, ref in enumerate(reference):
        got = graph.image_context(batched, i)
        for name, want in ref.items():
            if name == "":
                continue
            a, b = np.asarray(got[name]), np.asarray(want)
            assert a.shape == b.shape and a.dtype == b.dtype, (i, name, a.shape, b.shape, a.dtype, b.dtype)
            assert np.array_equal(a, b), (i, name)


@pytest.mark.parametrize("key", list(MODELS))
@pytest.mark.parametrize("n", [1, 2, 5])
def test_batched_equals_per_image_on_every_tensor(hw_graphs, key, n):
    hw, specialized, _ = hw_graphs[key]
    x = _images(n, seed=n)
    for model in (hw, specialized):
        graph = BatchedGraph(model)
        batched = graph.run(x, full_context=True)
        reference = _per_image(model, x)
        _assert_same_contexts(graph, batched, reference)
        out = graph.outputs[0]
        assert np.array_equal(np.asarray(batched[out]).argmax(-1),
                              np.array([np.asarray(r[out]).argmax(-1)[0] for r in reference]))
        only = graph.run(x)  # outputs only: the same logits, intermediate tensors freed on the way
        assert list(only) == [out] and np.array_equal(only[out], batched[out])


@pytest.mark.parametrize("key", ["cnn", "vit_cls"])
def test_dataflow_parent_runs_its_partition_batched(hw_graphs, key):
    hw, _, parent = hw_graphs[key]
    assert parent.get_nodes_by_op_type("StreamingDataflowPartition")
    x = _images(3)
    got = BatchedGraph(parent).run(x)[parent.graph.output[0].name]
    want = [r[parent.graph.output[0].name] for r in _per_image(parent, x)]
    assert np.array_equal(got, np.concatenate(want))
    assert np.array_equal(got, BatchedGraph(hw).run(x)[hw.graph.output[0].name])
    # the partition's input alone: only the host nodes before it run
    sdp = parent.get_nodes_by_op_type("StreamingDataflowPartition")[0]
    frames = BatchedGraph(parent).run(x, outputs=[sdp.input[0]])
    assert list(frames) == [sdp.input[0]] and frames[sdp.input[0]].shape[0] == 3


def test_the_callers_model_keeps_its_exec_modes(hw_graphs):
    _, specialized, _ = hw_graphs["mlp"]
    model = ModelWrapper(copy.deepcopy(specialized.model))
    hw_nodes = [n for n in model.graph.node if n.domain.startswith("finn.custom_op.fpgadataflow")]
    for node in hw_nodes:
        getCustomOp(node).set_nodeattr("exec_mode", "rtlsim")
    out = BatchedGraph(model).run(_images(2))  # the Python models run, no simulation is prepared
    assert next(iter(out.values())).shape == (2, 10)
    assert hw_nodes and all(getCustomOp(n).get_nodeattr("exec_mode") == "rtlsim" for n in hw_nodes)


def test_hardware_logits_in_chunks_equal_the_per_image_executor(hw_graphs, tmp_path):
    hw, _, _ = hw_graphs["vit"]
    path = tmp_path / "vit_hw.onnx"
    hw.save(str(path))
    x = _images(7)
    y = np.arange(7) % 10
    old = hardware_logits_per_image(path, x, workers=1, chunk=3, progress=False)
    for batch_size in (1, 3, 500):
        assert np.array_equal(hardware_logits(path, x, batch_size=batch_size, workers=1, progress=False), old)
    acc, logits = hardware_exact_accuracy(path, x, y, batch_size=4, workers=1, progress=False)
    assert np.array_equal(logits, old) and acc == float(np.mean(old.argmax(1) == y))
    assert hardware_logits(path, x[:0], progress=False).shape[0] == 0


def test_a_wrong_input_is_a_clear_error(hw_graphs):
    hw, _, _ = hw_graphs["mlp"]
    graph = BatchedGraph(hw)
    name = hw.graph.input[0].name
    with pytest.raises(BatchShapeError, match=rf"input {name} has shape \[3, 8, 8\]; expected a batch \[N, 1, 8, 8\]"):
        graph.run(np.zeros((3, 8, 8), dtype=np.float32))  # images without their channel axis
    with pytest.raises(BatchShapeError, match=r"expected a batch \[N, 1, 8, 8\]"):
        graph.run(np.zeros((1, 8, 8), dtype=np.float32))  # one image without the batch axis
    with pytest.raises(BatchShapeError, match="the graph takes"):
        graph.run({"nope": np.zeros((1, 1, 8, 8), dtype=np.float32)})
    with pytest.raises(BatchShapeError, match="no tensor named nope"):
        graph.run(_images(1), outputs=["nope"])


def test_a_graph_that_is_not_batch_1_is_refused(hw_graphs):
    hw, _, _ = hw_graphs["mlp"]
    model = ModelWrapper(copy.deepcopy(hw.model))
    model.set_tensor_shape(model.graph.input[0].name, [4, 1, 8, 8])
    with pytest.raises(BatchShapeError, match=r"has shape \[4, 1, 8, 8\]; a batched run needs batch-1 shapes"):
        BatchedGraph(model)


def _layout_graph(shape, perm):
    """Host layout ops as the hardware graph has them: Reshape (batch 1 in its target shape), Transpose, Flatten."""
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"], name="reshape"),
             helper.make_node("Transpose", ["r"], ["t"], perm=perm, name="transpose"),
             helper.make_node("Flatten", ["t"], ["y"], axis=1, name="flatten")]
    graph = helper.make_graph(
        nodes, "layout", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        value_info=[helper.make_tensor_value_info("r", TensorProto.FLOAT, shape),
                    helper.make_tensor_value_info("t", TensorProto.FLOAT, [shape[p] for p in perm])],
        initializer=[numpy_helper.from_array(np.array(shape, dtype=np.int64), "shape")])
    return ModelWrapper(qonnx_make_model(graph))


def test_standard_layout_ops_run_with_the_batch_axis():
    model = _layout_graph([1, 4, 16], [0, 2, 1])
    x = _images(3)
    got = BatchedGraph(model).run(x)["y"]
    assert np.array_equal(got, np.concatenate([execute_onnx(model, {"x": image[None]})["y"] for image in x]))
    with pytest.raises(UnsupportedNodeError, match=r"Transpose transpose moves the batch axis \(perm \[1, 0, 2\]\)"):
        BatchedGraph(_layout_graph([1, 1, 64], [1, 0, 2])).run(x)
