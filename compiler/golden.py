"""Golden execution of QONNX models: qonnx ``execute_onnx`` over a batch, in chunks of any batch size when the graph
is batch-agnostic (``batch_agnostic_problems`` says why not otherwise). torch is not needed; torch tensors are
accepted as inputs.
"""

import copy
import os

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.change_batchsize import ChangeBatchSize
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name

from compiler.errors import MinifinnError


class GoldenExecutionError(MinifinnError):
    """A model or input that cannot be executed as asked."""


def as_model(model):
    if isinstance(model, ModelWrapper):
        return model
    if isinstance(model, (str, os.PathLike)):
        if not os.path.exists(model):
            raise GoldenExecutionError(f"QONNX model file {os.fspath(model)} does not exist")
        return ModelWrapper(os.fspath(model))
    raise GoldenExecutionError(f"expected a qonnx ModelWrapper or a path to a .onnx file, got {type(model).__name__}")


def as_numpy(x):
    """float32 numpy array of ``x`` (numpy, list, or a torch tensor, detached)."""
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
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
    ``GoldenExecutionError`` when the graph is not batch-agnostic (``batch_agnostic_problems``)."""
    problems = batch_agnostic_problems(model)
    if problems:
        raise GoldenExecutionError(
            f"cannot change the batch size of this graph to {batch_size}: {'; '.join(problems[:4])}. Export with "
            "the batch size you execute with."
        )
    copied = ModelWrapper(copy.deepcopy(model.model))
    copied = copied.transform(ChangeBatchSize(batch_size))
    copied = copied.transform(InferShapes())
    out_shape = copied.get_tensor_shape(copied.graph.output[0].name)
    if not out_shape or out_shape[0] != batch_size:
        raise GoldenExecutionError(
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
    model = as_model(model)
    x = as_numpy(x)
    if x.ndim < 1 or len(x) == 0:
        raise GoldenExecutionError(f"execute_qonnx needs a non-empty batch, got shape {x.shape}")
    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    in_shape = model.get_tensor_shape(iname)
    if list(x.shape[1:]) != list(in_shape[1:]):
        raise GoldenExecutionError(f"input shape {tuple(x.shape)} does not match the model input {tuple(in_shape)} "
                          "(batch dimension excepted)")
    if batch_size is None or int(batch_size) < 1:
        raise GoldenExecutionError(f"batch_size must be a positive integer, got {batch_size!r}")
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
