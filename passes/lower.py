"""``lower_qonnx``: QONNX (Brevitas export) -> the lowered graph of exact integer arithmetic and thresholds.

Pipeline (each step a qonnx Transformation, usable alone or as a build step):

1. qonnx ``InferShapes``; every tensor must have a shape (``MissingShapesError`` names those without);
   ``canonicalize``: the same computation with the batch leading every tensor and the quantizers where the lowering
   needs them (exact rewrites, idempotent; the export and ``step_lower`` apply it to the QONNX model itself, so the
   verification runs the reference in batches and finds every quantizer the lowering records): ``LeadBatchAxis``
   (passes/batch_axis.py, e.g. Brevitas' sequence-first attention), ``HoistQuantizers``
   (passes/hoist_quantizers.py: quantizers next to float islands and in front of a Concat with constants); then
   ``SplitSlicedLinear`` (passes/split_linear.py: a packed q/k/v projection split per slice);
2. ``LegalizeFloatQuant`` (passes/legalize.py): check quantizers, split into format values + scale;
3. ``FoldScalesIntoThresholds`` (passes/streamline.py): exact integer ops between quantizers, thresholds;
4. cleanup: qonnx ``RemoveUnusedTensors``, ``InferShapes``, ``InferExactDatatypes`` (passes/datatypes.py),
   ``GiveUniqueNodeNames``.

The result executes with ``qonnx.core.onnx_exec.execute_onnx`` (``import custom_ops`` registers the ops); its
reference semantics are in docs/lowered_graph.md.
"""

import copy
import os

import onnx
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.change_batchsize import ChangeBatchSize
from qonnx.transformation.general import GiveUniqueNodeNames, RemoveUnusedTensors, SortGraph
from qonnx.transformation.infer_shapes import InferShapes

import custom_ops.general  # noqa: F401  (registers the lowered graph's ops)
from compiler.errors import MinifinnError, UnsupportedNodeError
from passes.batch_axis import LeadBatchAxis
from passes.datatypes import InferExactDatatypes
from passes.hoist_quantizers import HoistQuantizers
from passes.legalize import LegalizeFloatQuant
from passes.split_linear import SplitSlicedLinear
from passes.streamline import FoldScalesIntoThresholds


class ModelLoadError(MinifinnError):
    """A model file that cannot be read as ONNX."""


class MissingShapesError(UnsupportedNodeError):
    """Tensors whose shapes cannot be inferred."""


def load_model(model):
    """A ModelWrapper from a ModelWrapper, an onnx ModelProto or a path, with a clear error for bad files."""
    if isinstance(model, ModelWrapper):
        return model
    if isinstance(model, onnx.ModelProto):
        return ModelWrapper(model)
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise ModelLoadError(f"model file {path} does not exist")
    try:
        return ModelWrapper(path)
    except Exception as exc:  # onnx raises DecodeError / ValueError / ... for broken files
        raise ModelLoadError(
            f"{path} is not a readable ONNX model ({type(exc).__name__}: {str(exc)[:200]}); export it with "
            "compiler.export.export_qonnx_model or brevitas.export.export_qonnx"
        ) from None


def check_shapes(model):
    """Run shape inference and fail naming every tensor without a shape."""
    try:
        model = model.transform(InferShapes())
    except Exception as exc:
        raise MissingShapesError(f"shape inference failed: {type(exc).__name__}: {str(exc)[:300]}") from None
    missing = []
    for node in model.graph.node:
        for tensor in list(node.input) + list(node.output):
            if tensor and model.get_initializer(tensor) is None and model.get_tensor_shape(tensor) is None:
                missing.append(f"{tensor} ({node.op_type} {node.name})")
    if missing:
        raise MissingShapesError(
            f"{len(missing)} tensor(s) have no shape after shape inference: {', '.join(sorted(set(missing))[:8])}; "
            "export with a concrete example input so every shape is known"
        )
    return model


def canonicalize(model):
    """A QONNX model (ModelWrapper, shapes inferred) with the batch leading every tensor and its quantizers next to
    float islands and in front of a Concat with constants (module docstring). Every rewrite is exact; a graph
    already in this form is returned unchanged."""
    for transformation in (LeadBatchAxis(), HoistQuantizers()):
        model = model.transform(transformation)
    return model


def lower_qonnx(model):
    """QONNX model (ModelWrapper, ModelProto or path) -> lowered ModelWrapper (module docstring)."""
    model = load_model(model)
    model = ModelWrapper(model.model.__deepcopy__() if hasattr(model.model, "__deepcopy__") else model.model)
    model = model.transform(SortGraph())
    model = canonicalize(check_shapes(model)).transform(SplitSlicedLinear())
    model = model.transform(LegalizeFloatQuant())
    model = model.transform(InferShapes())
    model = model.transform(FoldScalesIntoThresholds())
    model = model.transform(RemoveUnusedTensors())
    model = model.transform(InferShapes())
    model = model.transform(InferExactDatatypes())
    model = model.transform(GiveUniqueNodeNames())
    return model


def set_batch_size(model, batch_size):
    """A copy of a lowered (or QONNX) model that runs batches of ``batch_size``: qonnx ``ChangeBatchSize``, and every
    qonnx ``Im2Col`` (whose shape inference assumes batch 1) replaced by ``BatchedIm2Col`` with the batch in its
    ``input_shape``."""
    copied = ModelWrapper(copy.deepcopy(model.model))
    copied = copied.transform(ChangeBatchSize(batch_size))
    for node in copied.get_nodes_by_op_type("Im2Col"):
        node.op_type, node.domain = "BatchedIm2Col", "custom_ops.general"
        inst = getCustomOp(node)
        dims = inst.get_nodeattr("input_shape").strip("()").split(",")
        inst.set_nodeattr("input_shape", "(" + ",".join([str(int(batch_size))] + dims[1:]) + ")")
    return check_shapes(copied)
