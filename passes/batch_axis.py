"""LeadBatchAxis: give every activation tensor of a batch-1 QONNX graph the batch as its leading axis.

minifinn's graphs keep the batch on axis 0 (``compiler.golden.batch_agnostic_problems``, qonnx ``ChangeBatchSize``,
``compiler.batched_exec``: every tensor shape starts with the batch, 1). Brevitas' ``QuantMultiheadAttention``
(torch's ``nn.MultiheadAttention`` form) works sequence-first: with ``batch_first=True`` (torchvision's ViT) it
transposes the (1, L, E) input to (L, 1, E), computes the projections on (L, 1, E), folds batch and heads into one
axis, (1 * H, L, d), for the attention products and transposes back at the end. In a batch-1 export these tensors
have no batch axis in front, and their Reshapes carry L or H first.

The pass lifts that region: every activation tensor whose leading dimension is not 1 (the batch) gets a leading
unit axis, the batch, in front of its shape, and the nodes around it are rewritten to match, exactly (at batch 1 a
unit axis moves without changing the C order of the data):

* a node inside the region (all its activation inputs and outputs lifted) keeps its computation on the trailing
  axes: ``Transpose`` perm ``[0] + [p + 1]``, ``Reshape`` to ``[1] + shape``, positive ``axis`` / ``axes``
  (Softmax, LayerNormalization, Concat, Gather, Slice) shifted by one; elementwise ops, quantizers and ``MatMul``
  broadcast their constants from the right and need no change;
* the region's entries (a ``Transpose`` or ``Reshape`` from a batch-leading tensor into it) become a ``Transpose``
  that keeps axis 0 (when the non-unit axes move) and a ``Reshape`` to the lifted shape; the exits (back to a
  batch-leading tensor) a ``Transpose`` of the lifted input and a ``Reshape`` to the original output shape.

After the pass the attention region has the zoo ViT's layout: (1, L, 1, E) projections, (1, H, L, d) heads. A graph
whose lifted region holds any other node (or is not exported at batch 1) is left unchanged; ``ChangeBatchSize`` then
stays unsafe for it and ``batch_agnostic_problems`` says why.
"""

import numpy as np
from onnx import helper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name

#: nodes that compute on the trailing axes only: lifted without change (constants broadcast from the right)
BROADCASTING = {"Add", "Sub", "Mul", "Div", "MatMul", "FloatQuant", "Quant", "Relu", "Gelu", "Erf", "Tanh",
                "Sigmoid", "Identity", "Clip", "Exp", "Neg", "Abs", "Sqrt", "Pow"}
#: nodes with an ``axis`` attribute (a positive axis moves by one)
AXIS_ATTR = {"Softmax", "LogSoftmax", "LayerNormalization", "Concat", "Gather"}


def activation_tensors(model):
    """Tensors that depend on a graph input (not weights, not their quantizers' outputs), in graph order."""
    dynamic = {i.name for i in model.graph.input if model.get_initializer(i.name) is None}
    for node in model.graph.node:
        if any(t in dynamic for t in node.input):
            dynamic.update(t for t in node.output if t)
    return dynamic


def _perm(node, rank):
    attr = get_by_name(node.attribute, "perm")
    return list(attr.ints) if attr is not None else list(range(rank))[::-1]


def _set_perm(node, perm):
    for attr in list(node.attribute):
        if attr.name == "perm":
            node.attribute.remove(attr)
    node.attribute.append(helper.make_attribute("perm", [int(p) for p in perm]))


class LeadBatchAxis(Transformation):
    """Lift the tensors of a batch-1 graph that do not start with the batch (module docstring)."""

    def apply(self, model):
        graph = model.graph
        if not graph.input or (model.get_tensor_shape(graph.input[0].name) or [None])[0] != 1:
            return model, False
        active = activation_tensors(model)
        shapes = {}
        for t in active:
            shape = model.get_tensor_shape(t)
            if shape is None:
                return model, False
            shapes[t] = list(shape)
        lifted = {t for t, s in shapes.items() if not s or s[0] != 1}
        if not lifted or any(o.name in lifted for o in graph.output):
            return model, False  # nothing to lift, or the graph's interface itself is not batch-first
        plan = []
        for node in graph.node:
            ins = [t for t in node.input if t in active]
            in_l = [t in lifted for t in ins]
            out_l = [t in lifted for t in node.output if t]
            if not any(in_l) and not any(out_l):
                continue
            if all(in_l) and all(out_l) and self._liftable(model, node, shapes):
                plan.append(("inside", node))
            elif not any(in_l) and all(out_l) and len(ins) == 1 and node.op_type in ("Transpose", "Reshape"):
                plan.append(("entry", node))
            elif all(in_l) and ins and not any(out_l) and node.op_type in ("Transpose", "Reshape"):
                plan.append(("exit", node))
            else:
                return model, False  # a node this pass does not know how to lift: leave the graph as it is
        for kind, node in plan:
            getattr(self, f"_{kind}")(model, node, shapes)
        for t in lifted:
            model.set_tensor_shape(t, [1] + shapes[t])
        return model.transform(InferShapes()), False

    @staticmethod
    def _liftable(model, node, shapes):
        if node.op_type in BROADCASTING or node.op_type in ("Transpose", "Reshape", "Slice"):
            return True
        if node.op_type in ("Softmax", "LogSoftmax") and get_by_name(node.attribute, "axis") is None:
            return False  # the default axis depends on the opset (1 and a 2-D view before opset 13)
        return node.op_type in AXIS_ATTR

    def _inside(self, model, node, shapes):
        rank = len(shapes[node.input[0]]) if node.input[0] in shapes else None
        if node.op_type == "Transpose":
            _set_perm(node, [0] + [p + 1 for p in _perm(node, rank)])
        elif node.op_type == "Reshape":
            node.input[1] = self._shape_const(model, [1] + shapes[node.output[0]])
        elif node.op_type == "Slice":
            starts = model.get_initializer(node.input[1])
            axes = model.get_initializer(node.input[3]) if len(node.input) > 3 and node.input[3] else None
            axes = np.arange(len(np.asarray(starts).ravel())) if axes is None else np.asarray(axes).ravel()
            name = model.make_new_valueinfo_name()
            model.set_initializer(name, np.asarray([a + 1 if a >= 0 else a for a in axes], dtype=np.int64))
            while len(node.input) < 4:
                node.input.append("")
            node.input[3] = name
        elif node.op_type in AXIS_ATTR:
            attr = get_by_name(node.attribute, "axis")
            if attr is not None and attr.i >= 0:
                attr.i += 1
            elif attr is None and node.op_type in ("Concat", "Gather"):
                node.attribute.append(helper.make_attribute("axis", 1))  # Gather's default axis 0, moved

    def _entry(self, model, node, shapes):
        """batch-leading input -> lifted output: keep axis 0 first, then reshape to the lifted shape."""
        self._as_reshape(model, node, shapes, [1] + shapes[node.output[0]], lift_input=False)

    def _exit(self, model, node, shapes):
        """lifted input -> batch-leading output: the move on the trailing axes, then reshape to the output."""
        self._as_reshape(model, node, shapes, shapes[node.output[0]], lift_input=True)

    def _as_reshape(self, model, node, shapes, target, lift_input):
        if node.op_type == "Transpose":
            rank = len(shapes[node.input[0]])
            perm = _perm(node, rank)
            if lift_input:
                perm = [0] + [p + 1 for p in perm]
            else:  # axis 0 (the batch, size 1) stays first; where it went is a unit axis the reshape inserts
                perm = [0] + [p for p in perm if p != 0]
            if perm != sorted(perm):
                moved = model.make_new_valueinfo_name()
                pos = list(model.graph.node).index(node)
                model.graph.node.insert(pos, helper.make_node("Transpose", [node.input[0]], [moved], perm=perm,
                                                              name=f"{node.name}_batch_first"))
                in_shape = [1] + shapes[node.input[0]] if lift_input else shapes[node.input[0]]
                model.set_tensor_shape(moved, [in_shape[p] for p in perm])
                node.input[0] = moved
            node.op_type = "Reshape"
            for attr in list(node.attribute):
                node.attribute.remove(attr)
            node.input.append("")
        node.input[1] = self._shape_const(model, target)

    @staticmethod
    def _shape_const(model, shape):
        name = model.make_new_valueinfo_name()
        model.set_initializer(name, np.asarray(shape, dtype=np.int64))
        return name
