"""HoistQuantizers: move a per-tensor activation quantizer in front of the data movement it follows, where the
lowering needs it there.

A quantizer whose scale, zero point and format parameters are scalars is elementwise, so it commutes with any data
movement: ``Q(move(x)) == move(Q(x))`` bit for bit (the same fp32 operations on the same elements). Two cases in
Brevitas' exports need the quantizer first:

* a **float island** (an op the lowering has no exact handler for: LayerNormalization, Softmax, GELU, ...) followed
  by data movement and then its output quantizer: torchvision's ViT transposes the LayerNorm output to the attention's
  sequence-first layout and reads the class token (``x[:, 0]``) between the final LayerNorm and the head's input
  quantizer. The hardware ops of such islands (``MinifloatLayerNorm``, ``MinifloatSoftmax``, the GELU table) are the
  island together with its quantizer, so the quantizer moves up to the island's output and the movement follows on
  the quantized values (a ``MinifloatReorder`` in hardware);
* a **Concat of constants and one activation** followed by a quantizer (torchvision's class token prepended to the
  patch tokens, then the positional-embedding add's input quantizer): ``Q(cat(c, x)) == Pad(Q(x)) + Q(c_0)``, the
  activation quantized and zero-padded to the Concat's shape, plus the constants quantized in their slots of a
  zero tensor ``c_0`` (a quantized constant, like a weight). Exact: every element of the sum has one zero term and
  ``Q(0) = 0``. Unlike a Concat with a batch-1 constant, the sum stays batch-agnostic (the constant broadcasts over
  the batch), and the lowering keeps it as values (passes/lowering/linear.py), which ``MinifloatReorder`` produces in
  hardware (a zero slot filled with constant codes). A constant input may be computed from constants
  (``quantize_model``'s class token: its own quantizer, then the ``Expand`` to the batch); its value is evaluated (as
  QONNX computes it) and the subgraph that computed it is removed.

The chain of data movement must feed only the quantizer (single consumers), so nothing else sees the change. The
quantizer's output name moves to the end of the chain: consumers are unchanged.
"""

import copy

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name, qonnx_make_model

from compiler.qonnx_formats import QUANT_OP_TYPES
from passes.batch_axis import activation_tensors
from passes.lowering.handlers import HANDLERS

#: data movement a per-tensor quantizer commutes with
DATA_MOVEMENT = ("Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Gather", "Slice", "Identity")


def per_tensor_quantizer(model, node):
    """True for a quantizer of an activation whose other inputs are all scalar constants."""
    if node.op_type not in QUANT_OP_TYPES or model.get_initializer(node.input[0]) is not None:
        return False
    params = [model.get_initializer(t) for t in node.input[1:] if t]
    return all(p is not None and np.asarray(p).size == 1 for p in params)


def _single_consumer(model, tensor, node):
    consumers = model.find_consumers(tensor) or []
    return len(consumers) == 1 and consumers[0] is node and tensor not in {o.name for o in model.graph.output}


def _is_float_island(node):
    return node.op_type not in HANDLERS and node.op_type not in QUANT_OP_TYPES


class HoistQuantizers(Transformation):
    """Quantizers after float island + data movement, and after a Concat with constants, move up (module
    docstring)."""

    def apply(self, model):
        modified = False
        for q in [n for n in model.graph.node if per_tensor_quantizer(model, n)]:
            producer = model.find_producer(q.input[0])
            if producer is None or not _single_consumer(model, q.input[0], q):
                continue
            if producer.op_type == "Concat":
                modified |= self._through_concat(model, producer, q)
                continue
            chain, node = [], producer
            while node is not None and node.op_type in DATA_MOVEMENT and \
                    _single_consumer(model, node.output[0], chain[0] if chain else q):
                chain.insert(0, node)
                node = model.find_producer(node.input[0])
            if chain and node is not None and _is_float_island(node):
                self._before_chain(model, chain, q)
                modified = True
        if modified:
            model = model.transform(InferShapes()).transform(GiveUniqueNodeNames())
        return model, False

    @staticmethod
    def _before_chain(model, chain, q):
        graph = model.graph
        out = q.output[0]
        moved = model.make_new_valueinfo_name()
        old_end = chain[-1].output[0]
        q.input[0] = chain[0].input[0]
        q.output[0] = moved
        chain[0].input[0] = moved
        chain[-1].output[0] = out
        graph.node.remove(q)
        graph.node.insert(list(graph.node).index(chain[0]), q)
        for vi in [v for v in graph.value_info if v.name in (out, old_end)]:
            graph.value_info.remove(vi)  # shape inference gives the moved tensors their shapes

    @staticmethod
    def _through_concat(model, concat, q):
        dynamic = activation_tensors(model)
        active = [i for i, t in enumerate(concat.input) if t in dynamic]
        if len(active) != 1:
            return False
        values = {i: constant_value(model, t) for i, t in enumerate(concat.input) if i not in active}
        shapes = [model.get_tensor_shape(t) if i in active else list(np.shape(values[i]))
                  for i, t in enumerate(concat.input)]
        out_shape = model.get_tensor_shape(concat.output[0])
        if out_shape is None or any(s is None or len(s) != len(out_shape) for s in shapes):
            return False
        axis = get_by_name(concat.attribute, "axis").i % len(out_shape)
        offsets = np.cumsum([0] + [s[axis] for s in shapes])
        consts = np.zeros(out_shape, dtype=np.float32)
        for i, t in enumerate(concat.input):
            if i not in active:
                index = [slice(None)] * len(out_shape)
                index[axis] = slice(offsets[i], offsets[i + 1])
                consts[tuple(index)] = np.broadcast_to(values[i], shapes[i])
        x = concat.input[active[0]]
        pads = [0] * (2 * len(out_shape))
        pads[axis], pads[len(out_shape) + axis] = int(offsets[active[0]]), int(offsets[-1] - offsets[active[0] + 1])
        names = {k: model.make_new_valueinfo_name() for k in ("qx", "padded", "pads", "c", "qc")}
        model.set_initializer(names["pads"], np.asarray(pads, dtype=np.int64))
        model.set_initializer(names["c"], consts)
        q_x, q_c = copy.deepcopy(q), copy.deepcopy(q)
        q_x.input[0], q_x.output[0], q_x.name = x, names["qx"], f"{q.name}_x"
        q_c.input[0], q_c.output[0], q_c.name = names["c"], names["qc"], f"{q.name}_const"
        new = [q_x, helper.make_node("Pad", [names["qx"], names["pads"]], [names["padded"]], mode="constant",
                                     name=f"{concat.name}_pad"),
               q_c, helper.make_node("Add", [names["padded"], names["qc"]], [q.output[0]], name=f"{concat.name}_add")]
        graph = model.graph
        pos = list(graph.node).index(concat)
        for offset, node in enumerate(new):
            graph.node.insert(pos + offset, node)
        graph.node.remove(concat)
        graph.node.remove(q)
        for vi in [v for v in graph.value_info if v.name in (concat.output[0], q.output[0])]:
            graph.value_info.remove(vi)
        for i, t in enumerate(concat.input):
            if i not in active:
                _remove_unused_cone(model, t)
        return True


def constant_value(model, tensor):
    """The value of a tensor that depends on constants only: an initializer, or the output of the nodes computing
    it from initializers, executed as QONNX executes them."""
    value = model.get_initializer(tensor)
    if value is not None:
        return np.asarray(value)
    cone, todo = [], [tensor]
    while todo:
        producer = model.find_producer(todo.pop())
        if producer is None:
            raise ValueError(f"{tensor} is not computed from constants")
        if producer not in cone:
            cone.append(producer)
            todo.extend(t for t in producer.input if t and model.get_initializer(t) is None)
    order = [n for n in model.graph.node if n in cone]
    inits = {t for n in order for t in n.input if t and model.get_initializer(t) is not None}
    graph = helper.make_graph(order, "constant", [], [helper.make_tensor_value_info(tensor, TensorProto.FLOAT,
                                                                                    model.get_tensor_shape(tensor))])
    sub = ModelWrapper(qonnx_make_model(graph, opset_imports=model.model.opset_import))
    for t in inits:
        sub.set_initializer(t, model.get_initializer(t))
    return np.asarray(execute_onnx(sub.transform(InferShapes()), {})[tensor])


def _remove_unused_cone(model, tensor):
    """Remove the nodes that computed ``tensor`` when nothing reads it any more (recursively up)."""
    todo = [tensor]
    while todo:
        t = todo.pop()
        producer = model.find_producer(t)
        if producer is None or model.find_consumers(t) or t in {o.name for o in model.graph.output}:
            continue
        model.graph.node.remove(producer)
        todo.extend(i for i in producer.input if i and model.get_initializer(i) is None)
