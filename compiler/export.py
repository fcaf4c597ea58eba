"""QONNX export of Brevitas models and golden execution.

``export_qonnx_model`` runs Brevitas' QONNX exporter with ``dynamo=False`` (the dynamo exporter silently drops the
quantizers inside ``QuantMultiheadAttention``, REFERENCE.md section 2), then cleans the graph up and records the
number format of every quantizer.

Cleanup (``cleanup=True``) is qonnx's ``cleanup_model`` with two changes, because minifinn's passes need every
weight quantizer with its format:

* ``FoldConstants`` leaves ``FloatQuant`` nodes alone (qonnx preserves ``Quant``/``BipolarQuant`` and ONNX QDQ
  nodes only, so it folds the weight ``FloatQuant`` nodes into plain float initializers on the grid and their
  format is lost);
* a ``Transpose`` fed only by a constant ``FloatQuant`` (weights of MatMul-style linears) is folded into the
  quantizer's initializers, as qonnx's ``FoldTransposeIntoQuantInit`` does for ``Quant``.

Everything else is the same: shape inference, unique parameter tensors, constant folding of the non-quantizer
constant subgraphs (Shape/Gather/Concat chains, the ViT's Pad/Add of the class token), removal of unused tensors and
static inputs, unique node names and readable tensor names.

Formats are recorded after the renaming, so the recorded names are those of the returned model:
``{quantizer output tensor name: qonnx type name}`` ("FLOAT<3,2,3>", "INT4", "UINT8", "BIPOLAR"), stored in the
model's ``metadata_props`` under ``"minifinn_formats"`` (JSON). ``fold_weights=True`` then folds the constant
quantizers like qonnx's cleanup would; the folded weight initializers keep the recorded names.
"""

import copy
import json
import os
import tempfile

import numpy as np
import torch
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.base import Transformation
from qonnx.transformation.change_batchsize import ChangeBatchSize
from qonnx.transformation.fold_constants import FoldConstants, FoldConstantsFiltered
from qonnx.transformation.general import (
    GiveReadableTensorNames,
    GiveUniqueNodeNames,
    GiveUniqueParameterTensors,
    RemoveStaticGraphInputs,
    RemoveUnusedTensors,
)
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit
from qonnx.util.basic import get_by_name

from compiler.errors import MinifinnError, UnsupportedNodeError
from compiler.numerics import IntFormat, MinifloatFormat

FORMATS_METADATA_KEY = "minifinn_formats"
QUANT_OP_TYPES = ("FloatQuant", "Quant", "BipolarQuant")
QONNX_DOMAIN = "qonnx.custom_op.general"


class ExportError(MinifinnError):
    """A model that cannot be exported or executed as asked."""


# ---------------------------------------------------------------------------------------------------------------
# graph transformations
# ---------------------------------------------------------------------------------------------------------------


def _is_const_quant(model, node):
    return node is not None and node.op_type in QUANT_OP_TYPES and all(
        model.get_initializer(i) is not None for i in node.input if i
    )


class FoldTransposeIntoFloatQuantInit(Transformation):
    """Fold ``Transpose(FloatQuant(constant weight))`` into the quantizer: transpose the weight and every
    non-scalar parameter (the per-channel scale) and let the quantizer produce the transposed tensor."""

    def apply(self, model):
        modified = False
        for node in list(model.graph.node):
            if node.op_type != "Transpose":
                continue
            producer = model.find_producer(node.input[0])
            if producer is None or producer.op_type != "FloatQuant" or not _is_const_quant(model, producer):
                continue
            if len(model.find_consumers(producer.output[0])) != 1:
                continue  # the untransposed weight is used elsewhere too
            x = model.get_initializer(producer.input[0])
            perm_attr = get_by_name(node.attribute, "perm")
            perm = list(perm_attr.ints) if perm_attr is not None else list(range(x.ndim))[::-1]
            for idx, name in enumerate(producer.input):
                arr = model.get_initializer(name)
                if idx > 0 and arr.size == 1:
                    continue  # scalars broadcast either way
                if arr.ndim > len(perm):
                    raise UnsupportedNodeError(
                        f"{producer.name}: input {name} has {arr.ndim} dims, more than the {len(perm)}-dim perm of "
                        f"the following Transpose {node.name}"
                    )
                arr = arr.reshape((1,) * (len(perm) - arr.ndim) + arr.shape)
                new_name = model.make_new_valueinfo_name()
                model.set_initializer(new_name, np.ascontiguousarray(arr.transpose(perm)))
                producer.input[idx] = new_name
            producer.output[0] = node.output[0]
            model.graph.node.remove(node)
            modified = True
        if modified:
            model = model.transform(RemoveUnusedTensors())
            model = model.transform(InferShapes())
        return model, modified


def cleanup_keep_quantizers(model):
    """qonnx's ``cleanup_model`` without folding the constant ``FloatQuant``/``Quant`` nodes (see module doc)."""
    for node in model.graph.node:
        if node.op_type in QUANT_OP_TYPES + ("Trunc",):
            node.domain = QONNX_DOMAIN
    for transformation in (
        InferShapes(),
        GiveUniqueParameterTensors(),
        FoldConstants(exclude_op_types=list(QUANT_OP_TYPES) + ["Trunc"]),
        FoldTransposeIntoQuantInit(),
        FoldTransposeIntoFloatQuantInit(),
        RemoveUnusedTensors(),
        RemoveStaticGraphInputs(),
        GiveUniqueNodeNames(),
        GiveReadableTensorNames(),
        InferShapes(),
    ):
        model = model.transform(transformation)
    return model


def fold_weight_quantizers(model):
    """Fold every quantizer whose inputs are all constants (what qonnx's cleanup does to weight ``FloatQuant``s):
    the weights become float initializers on the grid, named like the quantizer outputs they replace."""
    model = model.transform(FoldConstantsFiltered(lambda m, n: _is_const_quant(m, n)))
    return model.transform(RemoveUnusedTensors())


# ---------------------------------------------------------------------------------------------------------------
# formats
# ---------------------------------------------------------------------------------------------------------------


def _const_scalar(model, node, idx, what):
    if len(node.input) <= idx or not node.input[idx]:
        raise UnsupportedNodeError(f"{node.op_type} node {node.name} has no {what} input (input {idx})")
    value = model.get_initializer(node.input[idx])
    if value is None or np.asarray(value).size != 1:
        raise UnsupportedNodeError(
            f"{node.op_type} node {node.name}: {what} ({node.input[idx]}) must be a constant scalar, "
            f"found {'a dynamic tensor' if value is None else f'shape {np.asarray(value).shape}'}"
        )
    return float(np.asarray(value).ravel()[0])


def _int_attr(node, name, default):
    attr = get_by_name(node.attribute, name)
    return default if attr is None else int(attr.i)


def quantizer_format(model, node):
    """The number format (``MinifloatFormat`` / ``IntFormat``, or "BIPOLAR") a quantizer node implements.

    Raises ``UnsupportedNodeError`` for quantizers outside minifinn's conventions (inf/NaN encodings, no
    subnormals, non-saturating, rounding other than round-half-even, a clipped max, nonzero zero point).
    """
    if node.op_type == "FloatQuant":
        e = _const_scalar(model, node, 2, "exponent_bitwidth")
        m = _const_scalar(model, node, 3, "mantissa_bitwidth")
        b = _const_scalar(model, node, 4, "exponent_bias")
        mx = _const_scalar(model, node, 5, "max_val")
        if not all(float(v).is_integer() for v in (e, m, b)):
            raise UnsupportedNodeError(f"FloatQuant {node.name}: non-integer exponent/mantissa/bias {e}, {m}, {b}")
        fmt = MinifloatFormat(int(e), int(m), int(b))
        expected = {"has_inf": 0, "has_nan": 0, "has_subnormal": 1, "saturation": 1}
        for attr, want in expected.items():
            got = _int_attr(node, attr, {"has_subnormal": 0, "saturation": 1}.get(attr, 0))
            if got != want:
                raise UnsupportedNodeError(
                    f"FloatQuant {node.name}: {attr}={got}; minifinn supports has_inf=0, has_nan=0, "
                    "has_subnormal=1, saturation=1 (Brevitas' default minifloats)"
                )
        rounding = get_by_name(node.attribute, "rounding_mode")
        rounding = "ROUND" if rounding is None else rounding.s.decode().upper()
        if rounding != "ROUND":
            raise UnsupportedNodeError(f"FloatQuant {node.name}: rounding_mode={rounding}; minifinn supports ROUND")
        if mx != fmt.max:
            raise UnsupportedNodeError(
                f"FloatQuant {node.name}: max_val={mx} but {fmt.qonnx_name} reaches {fmt.max}; minifinn supports "
                "full-range minifloats (set max_available_float to the format's max)"
            )
        return fmt
    if node.op_type == "Quant":
        zero_point = model.get_initializer(node.input[2])
        if zero_point is None or np.any(np.asarray(zero_point) != 0):
            raise UnsupportedNodeError(f"Quant {node.name}: zero point must be a constant 0, found {zero_point}")
        bits = _const_scalar(model, node, 3, "bitwidth")
        if not bits.is_integer():
            raise UnsupportedNodeError(f"Quant {node.name}: bitwidth {bits} is not an integer")
        rounding = get_by_name(node.attribute, "rounding_mode")
        rounding = "ROUND" if rounding is None else rounding.s.decode().upper()
        if rounding != "ROUND":
            raise UnsupportedNodeError(f"Quant {node.name}: rounding_mode={rounding}; minifinn supports ROUND")
        signed, narrow = bool(_int_attr(node, "signed", 1)), bool(_int_attr(node, "narrow", 0))
        return IntFormat(int(bits), signed=signed, narrow=narrow)
    if node.op_type == "BipolarQuant":
        return "BIPOLAR"
    raise UnsupportedNodeError(f"{node.name} is a {node.op_type}, not a quantizer ({', '.join(QUANT_OP_TYPES)})")


def quantizer_nodes(model):
    """One dict per quantizer node: name, op_type, input/output tensor, format (qonnx name), narrow, and kind
    ("weight" when every input is a constant, e.g. weights and the ViT's positional embedding, else "act")."""
    rows = []
    for node in model.graph.node:
        if node.op_type not in QUANT_OP_TYPES:
            continue
        fmt = quantizer_format(model, node)
        rows.append({
            "node": node.name,
            "op_type": node.op_type,
            "input": node.input[0],
            "output": node.output[0],
            "format": fmt if isinstance(fmt, str) else fmt.qonnx_name,
            "narrow": bool(getattr(fmt, "narrow", False)),
            "kind": "weight" if _is_const_quant(model, node) else "act",
        })
    return rows


def record_formats(model):
    """Write ``{quantizer output tensor: qonnx format name}`` into ``metadata_props`` and return it."""
    formats = {row["output"]: row["format"] for row in quantizer_nodes(model)}
    model.set_metadata_prop(FORMATS_METADATA_KEY, json.dumps(formats, sort_keys=True))
    return formats


def recorded_formats(model):
    """The formats dict stored by ``export_qonnx_model`` (``{}`` when the model has none)."""
    model = _as_model(model)
    text = model.get_metadata_prop(FORMATS_METADATA_KEY)
    return {} if text is None else json.loads(text)


# ---------------------------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------------------------


def export_qonnx_model(model, example_input, path, cleanup=True, fold_weights=False):
    """Export a Brevitas model to QONNX at ``path`` and return it as a ``ModelWrapper``.

    ``example_input``: a tensor with the model's input shape (its batch size becomes the graph's; ``execute_qonnx``
    changes it). ``cleanup=False`` returns the raw export (formats recorded on its names). ``fold_weights=True``
    (needs ``cleanup``) folds constant quantizers after recording their formats, like qonnx's ``cleanup_model``.
    The model is put in eval mode (export freezes calibrated scales).
    """
    from brevitas.export import export_qonnx

    if fold_weights and not cleanup:
        raise ExportError("fold_weights=True needs cleanup=True (folding runs after the cleanup and renaming)")
    if not isinstance(example_input, torch.Tensor):
        example_input = torch.as_tensor(np.asarray(example_input), dtype=torch.float32)
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        with tempfile.TemporaryDirectory(prefix="minifinn_export_") as tmp:
            raw_path = os.path.join(tmp, "raw.onnx")
            with torch.no_grad():
                export_qonnx(model, example_input, export_path=raw_path, dynamo=False)
            qmodel = ModelWrapper(raw_path)
    finally:
        model.train(was_training)
    if cleanup:
        qmodel = cleanup_keep_quantizers(qmodel)
    record_formats(qmodel)
    if fold_weights:
        qmodel = fold_weight_quantizers(qmodel)
    qmodel.save(path)
    return qmodel


# ---------------------------------------------------------------------------------------------------------------
# golden execution
# ---------------------------------------------------------------------------------------------------------------


def _as_model(model):
    if isinstance(model, ModelWrapper):
        return model
    if isinstance(model, (str, os.PathLike)):
        if not os.path.exists(model):
            raise ExportError(f"QONNX model file {os.fspath(model)} does not exist")
        return ModelWrapper(os.fspath(model))
    raise ExportError(f"expected a qonnx ModelWrapper or a path to a .onnx file, got {type(model).__name__}")


def _as_numpy(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))


_SHAPE_OPS = ("Shape", "Expand", "Tile", "ConstantOfShape", "Range", "Size")
_AXIS_ATTR_OPS = {"Concat": None, "Gather": 0, "Split": 0, "Softmax": -1, "LogSoftmax": -1, "Hardmax": -1,
                  "Flatten": 1, "CumSum": None, "GatherElements": 0, "ArgMax": 0, "ArgMin": 0}


def _node_axes(model, node):
    """Axes a node works along (attribute ``axis``/``axes`` or constant input 1 for Reduce*/Slice/Squeeze/...)."""
    if node.op_type in _AXIS_ATTR_OPS:
        attr = get_by_name(node.attribute, "axis")
        default = _AXIS_ATTR_OPS[node.op_type]
        return [int(attr.i) if attr is not None else default]
    if node.op_type.startswith("Reduce") or node.op_type in ("Squeeze", "Unsqueeze", "Slice"):
        attr = get_by_name(node.attribute, "axes")
        if attr is not None:
            return list(attr.ints)
        idx = 3 if node.op_type == "Slice" else 1
        if len(node.input) > idx and node.input[idx]:
            axes = model.get_initializer(node.input[idx])
            return None if axes is None else [int(a) for a in np.asarray(axes).ravel()]
        if node.op_type == "Slice":
            return list(range(len(model.get_initializer(node.input[1]))))  # default: the first len(starts) axes
        return None  # no axes: all axes
    return []


def batch_agnostic_problems(model):
    """Reasons why changing the batch size of ``model`` (qonnx ``ChangeBatchSize``: graph input/output and the
    first entry of constant Reshape shapes) could give wrong results; ``[]`` when every node keeps the batch on
    axis 0 and never works along it."""
    problems = []
    batch = model.get_tensor_shape(model.graph.input[0].name)[0]
    dynamic = {inp.name for inp in model.graph.input if model.get_initializer(inp.name) is None}
    for node in model.graph.node:  # topologically sorted (ONNX requirement)
        if not any(i in dynamic for i in node.input):
            continue  # a constant subgraph (weights and their quantizers) has no batch
        dynamic.update(node.output)
        where = f"{node.op_type} {node.name}"
        if node.op_type in _SHAPE_OPS:
            problems.append(f"{where} depends on tensor shapes")
            continue
        if node.op_type == "Transpose":
            perm = get_by_name(node.attribute, "perm")
            if perm is None or perm.ints[0] != 0:
                problems.append(f"{where} moves the batch axis")
        elif node.op_type == "Reshape":
            shape = model.get_initializer(node.input[1])
            if shape is None or int(np.asarray(shape).ravel()[0]) not in (batch, -1, 0):
                problems.append(f"{where} has a non-constant shape or one without the batch first")
        elif node.op_type == "Pad":
            pads = model.get_initializer(node.input[1]) if len(node.input) > 1 else None
            if pads is None:
                problems.append(f"{where} has non-constant pads")
            else:
                pads = np.asarray(pads).ravel()
                if pads[0] != 0 or pads[len(pads) // 2] != 0:
                    problems.append(f"{where} pads the batch axis")
        else:
            axes = _node_axes(model, node)
            if axes is None or 0 in axes:
                problems.append(f"{where} works along the batch axis")
        for out in node.output:
            shape = model.get_tensor_shape(out)
            if shape is not None and (len(shape) == 0 or shape[0] != batch):
                problems.append(f"{where} output {out} has shape {shape}, not batch {batch} first")
    return problems


def with_batch_size(model, batch_size):
    """A copy of ``model`` whose graph runs batches of ``batch_size`` (qonnx ``ChangeBatchSize``); raises
    ``ExportError`` when the graph is not batch-agnostic (``batch_agnostic_problems``)."""
    problems = batch_agnostic_problems(model)
    if problems:
        raise ExportError(
            f"cannot change the batch size of this graph to {batch_size}: {'; '.join(problems[:4])}. Export with "
            "the batch size you execute with."
        )
    copied = ModelWrapper(copy.deepcopy(model.model))
    copied = copied.transform(ChangeBatchSize(batch_size))
    copied = copied.transform(InferShapes())
    out_shape = copied.get_tensor_shape(copied.graph.output[0].name)
    if not out_shape or out_shape[0] != batch_size:
        raise ExportError(
            f"changing the graph's batch size to {batch_size} failed (output shape after shape inference: "
            f"{out_shape}). Export with the batch size you execute with."
        )
    return copied


def execute_qonnx(model, x, batch_size=64):
    """Golden execution of a QONNX model (qonnx ``execute_onnx``) on a batch ``x``; returns the outputs (logits)
    as a float32 numpy array with ``len(x)`` rows.

    Runs ``batch_size`` samples per ``execute_onnx`` call when the graph is batch-agnostic (all zoo models are),
    otherwise the exported batch size; the last chunk is zero-padded and the padding's outputs are dropped.
    """
    model = _as_model(model)
    x = _as_numpy(x)
    if x.ndim < 1 or len(x) == 0:
        raise ExportError(f"execute_qonnx needs a non-empty batch, got shape {x.shape}")
    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    in_shape = model.get_tensor_shape(iname)
    if list(x.shape[1:]) != list(in_shape[1:]):
        raise ExportError(f"input shape {tuple(x.shape)} does not match the model input {tuple(in_shape)} "
                          "(batch dimension excepted)")
    if batch_size is None or int(batch_size) < 1:
        raise ExportError(f"batch_size must be a positive integer, got {batch_size!r}")
    bs = min(int(batch_size), len(x))
    run_model = model
    if bs != in_shape[0]:
        if batch_agnostic_problems(model):
            bs = in_shape[0]
        else:
            run_model = with_batch_size(model, bs)
    outputs = []
    for start in range(0, len(x), bs):
        chunk = x[start:start + bs]
        n = len(chunk)
        if n < bs:
            chunk = np.concatenate([chunk, np.zeros((bs - n,) + chunk.shape[1:], dtype=np.float32)])
        out = execute_onnx(run_model, {iname: chunk})[oname]
        outputs.append(np.asarray(out, dtype=np.float32)[:n])
    return np.concatenate(outputs)


def compare_with_brevitas(model_torch, qonnx_model, x, batch_size=64):
    """Run the Brevitas model and its QONNX export on ``x``; returns max/mean abs logit difference, the largest
    |logit| (for scale), the fraction of samples whose argmax agrees, and the sample count."""
    x_np = _as_numpy(x)
    if x_np.ndim < 1 or len(x_np) == 0:
        raise ExportError(f"compare_with_brevitas needs a non-empty batch, got shape {x_np.shape}")
    was_training = model_torch.training
    model_torch.eval()
    try:
        with torch.no_grad():  # in chunks too: a whole test set through a ViT at once needs GBs for the scores
            step = max(1, int(batch_size or len(x_np)))
            ref = np.concatenate([
                model_torch(torch.from_numpy(x_np[i:i + step])).detach().cpu().numpy().astype(np.float32)
                for i in range(0, len(x_np), step)
            ])
    finally:
        model_torch.train(was_training)
    got = execute_qonnx(qonnx_model, x_np, batch_size=batch_size)
    if ref.shape != got.shape:
        raise ExportError(f"Brevitas output shape {ref.shape} differs from the QONNX output shape {got.shape}")
    diff = np.abs(ref.astype(np.float64) - got.astype(np.float64))
    return {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "max_abs_logit": float(np.abs(ref).max()),
        "argmax_agreement": float(np.mean(ref.argmax(axis=-1) == got.argmax(axis=-1))),
        "num_samples": int(len(x_np)),
        # samples whose logits differ by more than fp32 summation noise (a quantizer input on the other side of a
        # rounding tie moves its code by one step, and the step travels on)
        "samples_off_by_more_than_1e-4": int(np.sum(diff.reshape(len(x_np), -1).max(axis=1) > 1e-4)),
    }
