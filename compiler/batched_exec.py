"""Batched execution of a hardware graph: every node's Python golden model on a batch of images at once.

A hardware graph (``step_convert_to_hw``'s model with the host's input quantization and output dequantization, a
dataflow partition, or the dataflow parent whose ``StreamingDataflowPartition`` holds the partition) has batch-1
shapes: FINN's ``numInputVectors`` and every tensor shape start with the batch, 1. ``BatchedGraph`` runs such a
graph on (N, ...) inputs: every node once per batch, through the op's own ``execute_node`` (its Python model;
hardware nodes run it whatever their ``exec_mode``), on arrays whose leading axis is the batch (the ops' golden
models take it). Standard ONNX nodes (the host's layout ops) run in onnxruntime with a symbolic batch dimension, a
``Reshape`` with the batch in its target shape; a ``StreamingDataflowPartition`` runs its partition batched.

The result equals qonnx ``execute_onnx`` image by image, bit for bit, for every tensor (tests/test_batched_exec.py):
image ``i`` of the batch is ``ctx[name][i:i + 1]`` of every tensor with a batch axis (``image_context``). Tensors
are exact as the ops return them (wide accumulators are Python-int object arrays; no rounding to the datatype
annotation, as ``passes.compare.execute_lowered``). Callers run long inputs in chunks of ``DEFAULT_BATCH_SIZE``
images (memory): the flagship ViT's tensors for 500 images take ~100 MB.
"""

import copy
from pathlib import Path

import numpy as np
import onnx.helper as helper
import onnxruntime as rt
from onnx import numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp, is_custom_op
from qonnx.util.basic import get_preferred_qonnx_opset

import custom_ops  # noqa: F401  (registers the hardware ops)
from compiler.errors import MinifinnError, UnsupportedNodeError

#: the op that holds a dataflow partition in a parent graph
PARTITION_OP = "StreamingDataflowPartition"

#: images per batched run of a long input
DEFAULT_BATCH_SIZE = 500


class BatchShapeError(MinifinnError):
    """An input that is not a batch of the graph's inputs, or a graph or node that cannot run batched."""


def _as_model(model):
    if isinstance(model, (str, Path)):
        return ModelWrapper(str(model))
    return ModelWrapper(copy.deepcopy(model.model))


class BatchedGraph:
    """A hardware graph (``ModelWrapper`` or path; copied, the caller's model is not changed) ready to run batches.

    ``run(x)`` -> {output name: (N, ...) array}; ``run(x, outputs=[names])`` runs only the nodes those tensors need;
    ``run(x, full_context=True)`` returns every tensor (initializers as they are, the rest with the batch axis).
    ``x`` is an (N, ...) array for the graph's first input or a dict {input name: (N, ...) array}.
    ``partition`` (a dataflow partition model or path) replaces what the parent's ``StreamingDataflowPartition``
    nodes refer to: the built partition (folded, requantizer styles chosen) in the parent saved before folding.
    """

    def __init__(self, model, partition=None):
        self.model = _as_model(model)
        graph = self.model.graph
        self.name = graph.name or "model"
        if not self.model.check_all_tensor_shapes_specified():
            raise BatchShapeError(f"{self.name}: tensor shapes are missing; run qonnx InferShapes first")
        self.inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.shapes = {vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
                       for vi in list(graph.input) + list(graph.output) + list(graph.value_info)}
        self.elem_types = {vi.name: vi.type.tensor_type.elem_type
                           for vi in list(graph.input) + list(graph.output) + list(graph.value_info)}
        self.inputs = [i.name for i in graph.input if i.name not in self.inits]
        self.outputs = [o.name for o in graph.output]
        for name, shape in self.shapes.items():
            if name not in self.inits and (not shape or shape[0] != 1):
                raise BatchShapeError(f"{self.name}: tensor {name} has shape {list(shape)}; a batched run needs "
                                      "batch-1 shapes (the batch as the leading axis, 1)")
        opsets = self.model.get_opset_imports()
        self.opsets = [opsets.get(n.domain, get_preferred_qonnx_opset()) for n in graph.node]
        self.ops = []
        for node in graph.node:
            inst = None
            if is_custom_op(node.domain, node.op_type):
                inst = getCustomOp(node)
                if "exec_mode" in inst.get_nodeattr_types():
                    inst.set_nodeattr("exec_mode", "")  # "": the Python golden model
            self.ops.append(inst)
        self._sessions = {}
        self._partitions = {}
        if partition is not None:
            shared = BatchedGraph(partition)
            self._partitions = {i: shared for i, node in enumerate(graph.node) if node.op_type == PARTITION_OP}

    # --- public ---------------------------------------------------------------------------------------------------
    def run(self, x, outputs=None, full_context=False):
        feeds = self._feeds(x)
        n = len(next(iter(feeds.values())))
        wanted = list(outputs) if outputs is not None else list(self.outputs)
        nodes = self._needed(wanted) if not full_context else range(len(self.model.graph.node))
        last_use = self._last_use(nodes, wanted)
        ctx = dict(self.inits)
        for name, shape in self.shapes.items():
            if name not in self.inits:  # the shape the graph declares for the batch (ops read it, as in qonnx)
                ctx[name] = np.broadcast_to(np.zeros((), dtype=np.float32), (n,) + shape[1:])
        ctx.update(feeds)
        for i in nodes:
            node = self.model.graph.node[i]
            self._execute(i, node, ctx, n)
            if not full_context:
                for t in node.input:
                    if last_use.get(t) == i and t not in self.inits:
                        ctx[t] = None
        if full_context:
            return ctx
        return {name: ctx[name] for name in wanted}

    def image_context(self, ctx, i):
        """Image ``i`` of a batched full context, as qonnx ``execute_onnx`` returns it for that image alone: every
        tensor with a batch axis at ``[i:i + 1]``, initializers as they are."""
        return {k: (v if k in self.inits or v is None else v[i:i + 1]) for k, v in ctx.items()}

    # --- inputs and scheduling ------------------------------------------------------------------------------------
    def _feeds(self, x):
        if not isinstance(x, dict):
            x = {self.inputs[0]: x}
        unknown = [k for k in x if k not in self.inputs]
        if unknown or len(x) != len(self.inputs):
            raise BatchShapeError(f"{self.name}: inputs {sorted(x)} given, the graph takes {self.inputs}")
        feeds, sizes = {}, set()
        for name, value in x.items():
            value = np.asarray(value)
            if self.elem_types.get(name) == 1:  # FLOAT
                value = value.astype(np.float32, copy=False)
            want = self.shapes[name][1:]
            if value.ndim != len(want) + 1 or tuple(value.shape[1:]) != want:
                raise BatchShapeError(f"{self.name}: input {name} has shape {list(value.shape)}; expected a batch "
                                      f"[N, {', '.join(map(str, want))}] (the graph's shape "
                                      f"{list(self.shapes[name])} with N images in place of the leading 1)")
            feeds[name] = value
            sizes.add(len(value))
        if len(sizes) != 1 or 0 in sizes:
            raise BatchShapeError(f"{self.name}: the inputs must hold the same number (>= 1) of images, got "
                                  f"{sorted(sizes)}")
        return feeds

    def _needed(self, wanted):
        """Indices of the nodes the tensors ``wanted`` depend on, in graph order."""
        nodes = self.model.graph.node
        producer = {o: i for i, nd in enumerate(nodes) for o in nd.output}
        missing = [t for t in wanted if t not in producer and t not in self.inputs and t not in self.inits]
        if missing:
            raise BatchShapeError(f"{self.name}: no tensor named {', '.join(missing)}")
        need, todo = set(), [producer[t] for t in wanted if t in producer]
        while todo:
            i = todo.pop()
            if i in need:
                continue
            need.add(i)
            todo.extend(producer[t] for t in nodes[i].input if t in producer)
        return sorted(need)

    def _last_use(self, nodes, wanted):
        last = {}
        for i in nodes:
            for t in self.model.graph.node[i].input:
                last[t] = i
        for t in wanted:
            last.pop(t, None)
        return last

    # --- one node -------------------------------------------------------------------------------------------------
    def _execute(self, i, node, ctx, n):
        if node.op_type == PARTITION_OP:
            self._execute_partition(i, node, ctx)
        elif self.ops[i] is not None:
            self.ops[i].execute_node(ctx, self.model.graph)
        else:
            self._execute_standard(i, node, ctx, n)
        for name in node.output:
            value = ctx[name]
            if name in self.shapes and (not hasattr(value, "shape") or value.ndim == 0 or value.shape[0] != n):
                shape = getattr(value, "shape", None)
                raise BatchShapeError(f"{self.name}: node {node.name} ({node.op_type}) returned {name} of shape "
                                      f"{None if shape is None else list(shape)} for a batch of {n}: its Python "
                                      f"model does not keep a leading batch axis")

    def _execute_partition(self, i, node, ctx):
        """A ``StreamingDataflowPartition``: its partition model, batched; inputs and outputs matched by position
        (as FINN's ``execute_node`` of the op)."""
        if i not in self._partitions:
            self._partitions[i] = BatchedGraph(getCustomOp(node).get_nodeattr("model"))
        part = self._partitions[i]
        res = part.run({part.inputs[k]: ctx[t] for k, t in enumerate(node.input)})
        for k, t in enumerate(node.output):
            ctx[t] = res[part.outputs[k]]

    def _session(self, i, node):
        """An onnxruntime session of the node alone, its activations with a symbolic batch dimension."""
        if i in self._sessions:
            return self._sessions[i]
        if node.op_type == "Transpose":
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            if perm is not None and perm[0] != 0:
                raise UnsupportedNodeError(f"{self.name}: Transpose {node.name} moves the batch axis (perm {perm})")
        if node.op_type == "Flatten" and next((a.i for a in node.attribute if a.name == "axis"), 1) == 0:
            raise UnsupportedNodeError(f"{self.name}: Flatten {node.name} with axis 0 merges the batch axis")
        inputs = []
        for t in node.input:
            if not t:
                continue
            if t in self.inits:
                value = self.inits[t]
                inputs.append(helper.make_tensor_value_info(t, helper.np_dtype_to_tensor_dtype(value.dtype),
                                                            list(value.shape)))
            else:
                inputs.append(helper.make_tensor_value_info(t, self.elem_types[t], ["N", *self.shapes[t][1:]]))
        outputs = [helper.make_tensor_value_info(t, self.elem_types.get(t, 1), None) for t in node.output]
        graph = helper.make_graph([node], "single-node-batched", inputs, outputs)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opsets[i])])
        sess = rt.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        self._sessions[i] = sess
        return sess

    def _execute_standard(self, i, node, ctx, n):
        sess = self._session(i, node)
        feeds = {t: ctx[t] for t in node.input if t}
        if node.op_type == "Reshape":  # the target shape with the batch: [N] + the declared shape's other axes
            feeds[node.input[1]] = np.asarray((n,) + self.shapes[node.output[0]][1:], dtype=np.int64)
        for t, value in zip(node.output, sess.run(list(node.output), feeds)):
            ctx[t] = value
