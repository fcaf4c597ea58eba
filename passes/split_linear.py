"""SplitSlicedLinear: a packed linear layer whose output is only read in column slices becomes one linear layer per
slice.

Brevitas' ``QuantMultiheadAttention`` (like torch's ``nn.MultiheadAttention``) computes queries, keys and values
with one packed projection, ``in_proj`` (E x 3E), and splits its output with ``chunk(3, dim=-1)``: a
``MatMul(x, W)``, the bias ``Add`` and three ``Slice`` nodes on the last axis. The lowering needs each slice as an
accumulator of its own (each is requantized by its own quantizer, ``q_scaled_quant`` / ``k_transposed_quant`` /
``v_quant``, after its own reshapes), so the pass replaces the pattern by one ``MatMul`` (+ ``Add``) per slice on
the slice's columns of the weight (and of its per-column scale, when the weight has a quantizer) and of the bias:
the same dot products, column for column. In hardware they are three MVAUs, as the zoo ViT's q/k/v linears.

Pattern: ``MatMul(x, W)`` with ``W`` an initializer or the output of a quantizer of constants, optionally followed
by ``Add`` of a constant bias (its only consumer), whose consumers are all ``Slice`` nodes with constant starts and
ends on the last axis only (step 1). Anything else is left as it is.
"""

import numpy as np
from onnx import helper
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import GiveUniqueNodeNames, RemoveUnusedTensors
from qonnx.transformation.infer_shapes import InferShapes

from compiler.qonnx_formats import QUANT_OP_TYPES, is_const_quant


def _const(model, node, i):
    return model.get_initializer(node.input[i]) if len(node.input) > i and node.input[i] else None


def _column_range(model, node, rank, cols):
    """(start, end) of a Slice on the last axis of a rank-``rank`` tensor with ``cols`` columns, else None."""
    if node.op_type != "Slice" or len(node.input) < 3:
        return None
    starts, ends = _const(model, node, 1), _const(model, node, 2)
    axes = _const(model, node, 3) if len(node.input) > 3 and node.input[3] else None
    steps = _const(model, node, 4) if len(node.input) > 4 and node.input[4] else None
    if starts is None or ends is None or (len(node.input) > 3 and node.input[3] and axes is None):
        return None
    starts, ends = np.asarray(starts).ravel(), np.asarray(ends).ravel()
    axes = np.arange(len(starts)) if axes is None else np.asarray(axes).ravel()
    if len(starts) != 1 or int(axes[0]) % rank != rank - 1:
        return None
    if steps is not None and int(np.asarray(steps).ravel()[0]) != 1:
        return None
    start, end = (int(min(max(v + cols if v < 0 else v, 0), cols)) for v in (starts[0], ends[0]))
    return (start, end) if start < end else None


class SplitSlicedLinear(Transformation):
    """Packed projections read in column slices -> one projection per slice (module docstring)."""

    def apply(self, model):
        modified = False
        for mm in [n for n in model.graph.node if n.op_type == "MatMul"]:
            modified |= self._split(model, mm)
        if modified:
            model = model.transform(RemoveUnusedTensors()).transform(InferShapes()).transform(GiveUniqueNodeNames())
        return model, False

    def _split(self, model, mm):
        weight, wq = self._weight(model, mm.input[1])
        if weight is None or weight.ndim != 2:
            return False
        cols = weight.shape[1]
        out_shape = model.get_tensor_shape(mm.output[0])
        if out_shape is None:
            return False
        consumers = model.find_consumers(mm.output[0]) or []
        add, bias = None, None
        if len(consumers) == 1 and consumers[0].op_type == "Add":
            add = consumers[0]
            other = [t for t in add.input if t != mm.output[0]]
            bias = model.get_initializer(other[0]) if len(other) == 1 else None
            if bias is None or (np.asarray(bias).ndim and np.asarray(bias).shape[-1] not in (1, cols)):
                return False
            consumers = model.find_consumers(add.output[0]) or []
        end = add.output[0] if add is not None else mm.output[0]
        if not consumers or end in {o.name for o in model.graph.output}:
            return False
        ranges = [_column_range(model, s, len(out_shape), cols) for s in consumers]
        if any(r is None for r in ranges):
            return False
        graph = model.graph
        pos = list(graph.node).index(mm)
        new = []
        for sl, (start, stop) in zip(consumers, ranges):
            w_name = self._weight_slice(model, mm.input[1], wq, start, stop, new)
            acc = sl.output[0] if add is None else model.make_new_valueinfo_name()
            new.append(helper.make_node("MatMul", [mm.input[0], w_name], [acc], name=f"{mm.name}_c{start}"))
            if add is None:
                continue
            b = np.asarray(bias)
            b_name = model.make_new_valueinfo_name()
            model.set_initializer(b_name, np.ascontiguousarray(b[..., start:stop] if b.ndim and b.shape[-1] == cols
                                                               else b))
            new.append(helper.make_node("Add", [acc, b_name], [sl.output[0]], name=f"{add.name}_c{start}"))
        for node in [mm, add] + consumers:
            if node is not None:
                graph.node.remove(node)
        if wq is not None and not model.find_consumers(wq.output[0]):
            graph.node.remove(wq)
        for offset, node in enumerate(new):
            graph.node.insert(pos + offset, node)
        return True

    @staticmethod
    def _weight(model, name):
        """(weight array, its constant quantizer node or None), or (None, None)."""
        w = model.get_initializer(name)
        if w is not None:
            return np.asarray(w), None
        producer = model.find_producer(name)
        if producer is None or producer.op_type not in QUANT_OP_TYPES or not is_const_quant(model, producer):
            return None, None
        return np.asarray(model.get_initializer(producer.input[0])), producer

    @staticmethod
    def _weight_slice(model, name, wq, start, stop, new):
        """The name of the weight's columns start:stop (a new quantizer of the sliced constants, if it had one)."""
        if wq is None:
            sliced = model.make_new_valueinfo_name()
            model.set_initializer(sliced, np.ascontiguousarray(np.asarray(model.get_initializer(name))[:, start:stop]))
            model.set_tensor_datatype(sliced, model.get_tensor_datatype(name))
            return sliced
        cols = np.asarray(model.get_initializer(wq.input[0])).shape[1]
        inputs = []
        for t in wq.input:
            arr = model.get_initializer(t) if t else None
            if arr is not None and np.asarray(arr).ndim == 2 and np.asarray(arr).shape[1] == cols:
                part = model.make_new_valueinfo_name()
                model.set_initializer(part, np.ascontiguousarray(np.asarray(arr)[:, start:stop]))
                inputs.append(part)
            else:
                inputs.append(t)  # scalars and parameters broadcast along the columns
        out = model.make_new_valueinfo_name()
        node = helper.make_node(wq.op_type, inputs, [out], name=f"{wq.name}_c{start}", domain=wq.domain)
        node.attribute.extend(wq.attribute)
        new.append(node)
        return out
