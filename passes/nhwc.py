"""ConvertToNHWC: the lowered graph of a CNN in channels-last layout, so that convolutions stream without transposes.

The lowering turns every ``Conv`` into ``Transpose(NCHW->NHWC) -> Im2Col -> ExactMatMul -> MinifloatThreshold ->
Transpose(NHWC->NCHW)``, so between two convolutions the tensor is transposed back and forth, and the ops after the
last convolution (residual add, pooling, flatten) run in NCHW. A stream carries one layout only, so FINN (and we)
need channels-last everywhere: this pass pushes every ``Transpose(perm=[0, 3, 1, 2])`` (NHWC -> NCHW) downstream
until it meets its inverse (both vanish) or a graph output (where it stays, on the host side):

* forks: a transpose feeding several nodes is duplicated, one per consumer;
* ``Transpose(perm=[0, 2, 3, 1])`` (the inverse): both are removed;
* layout-agnostic ops (``MinifloatThreshold`` with per-tensor thresholds or thresholds on the channel axis,
  ``QuantizeToFormat``, ``Dequantize`` with a scalar scale, ``Relu``): the op moves before the transpose
  (a per-channel op gets ``channel_axis = -1``);
* ``ExactAdd`` whose inputs are both transposed the same way (or one is a constant, transposed here);
* ``MaxPool`` -> qonnx ``MaxPoolNHWC`` (same attributes); ``ExactSumPool`` over H and W -> the same sum over the
  NHWC axes 1 and 2 (kernelled sum pools, i.e. 2-D average pooling, keep the kernel and run NHWC too);
* ``Flatten``/``Reshape`` to (N, C*H*W) feeding an ``ExactMatMul`` with constant weights (directly or through
  per-tensor requantizers): the flatten runs on the NHWC tensor and the weight rows are permuted from (C, H, W) to
  (H, W, C) order (exact: a row permutation). With H = W = 1 no permutation is needed.

Every rewrite is exact (layout only), so the lowered graph computes the same values, bit for bit; a transpose that
cannot be pushed stays where it is (``step_convert_to_hw`` then lists it among the unmappable nodes).
"""

import numpy as np
from onnx import helper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import GiveUniqueNodeNames

TO_NCHW = [0, 3, 1, 2]
TO_NHWC = [0, 2, 3, 1]
ELEMENTWISE = ("QuantizeToFormat", "Dequantize", "MinifloatThreshold", "Relu")


def _perm(node):
    for a in node.attribute:
        if a.name == "perm":
            return list(a.ints)
    return None


def _is_to_nchw(node):
    return node is not None and node.op_type == "Transpose" and _perm(node) == TO_NCHW


def _nhwc_shape(shape):
    return [shape[i] for i in TO_NHWC]


class ConvertToNHWC(Transformation):
    """Push NHWC->NCHW transposes downstream until they cancel (module docstring); returns (model, modified)."""

    #: why a node of these op types can stay unmapped after this pass (listed by passes.convert_to_hw)
    UNMAPPED = {
        "Transpose": ("layout change that ConvertToNHWC could not cancel (a stream carries one layout; the transpose "
                      "must meet its inverse or sit at the graph input/output)"),
        "MaxPool": "max pooling left in NCHW (ConvertToNHWC could not move it)",
    }

    def apply(self, model):
        modified = False
        changed = True
        while changed:
            changed = self._split_forks(model)
            for node in list(model.graph.node):
                if _is_to_nchw(node) and node in model.graph.node and self._push(model, node):
                    changed = True
                    break
            modified |= changed
        if modified:
            model = model.transform(GiveUniqueNodeNames())
        return model, modified

    # --- helpers ----------------------------------------------------------------------------------------------
    @staticmethod
    def _split_forks(model):
        changed = False
        for node in list(model.graph.node):
            if not _is_to_nchw(node):
                continue
            consumers = model.find_consumers(node.output[0]) or []
            if len(consumers) < 2:
                continue
            for k, cons in enumerate(consumers[1:], start=1):
                out = model.make_new_valueinfo_name()
                model.graph.value_info.append(helper.make_tensor_value_info(out, 1, None))
                model.set_tensor_shape(out, model.get_tensor_shape(node.output[0]))
                model.set_tensor_datatype(out, model.get_tensor_datatype(node.output[0]))
                dup = helper.make_node("Transpose", [node.input[0]], [out], perm=TO_NCHW, name=f"{node.name}_fork{k}")
                model.graph.node.insert(list(model.graph.node).index(node) + 1, dup)
                for i, t in enumerate(cons.input):
                    if t == node.output[0]:
                        cons.input[i] = out
            changed = True
        return changed

    @staticmethod
    def _new_tensor(model, like, shape):
        name = model.make_new_valueinfo_name()
        model.graph.value_info.append(helper.make_tensor_value_info(name, 1, shape))
        model.set_tensor_datatype(name, model.get_tensor_datatype(like))
        return name

    def _move_past(self, model, transposes, cons, set_nhwc_attrs=None):
        """``cons`` reads the NHWC inputs of ``transposes`` directly; its output becomes NHWC and a new NCHW
        transpose restores the original tensor for the consumers."""
        out = cons.output[0]
        nchw_shape = model.get_tensor_shape(out)
        nhwc = self._new_tensor(model, out, _nhwc_shape(nchw_shape))
        for t in transposes:
            for i, name in enumerate(cons.input):
                if name == t.output[0]:
                    cons.input[i] = t.input[0]
            model.graph.node.remove(t)
        cons.output[0] = nhwc
        if set_nhwc_attrs:
            set_nhwc_attrs()
        back = helper.make_node("Transpose", [nhwc], [out], perm=TO_NCHW, name=f"{cons.name}_to_nchw")
        model.graph.node.insert(list(model.graph.node).index(cons) + 1, back)
        return True

    def _push(self, model, t):
        consumers = model.find_consumers(t.output[0]) or []
        if len(consumers) != 1:
            return False
        cons = consumers[0]
        op = cons.op_type
        if cons.op_type == "Transpose" and _perm(cons) == TO_NHWC:
            if cons.output[0] in [o.name for o in model.graph.output]:
                return False
            for other in model.find_consumers(cons.output[0]) or []:
                for i, name in enumerate(other.input):
                    if name == cons.output[0]:
                        other.input[i] = t.input[0]
            model.graph.node.remove(cons)
            model.graph.node.remove(t)
            return True
        if op in ELEMENTWISE and cons.input[0] == t.output[0]:
            return self._elementwise(model, t, cons)
        if op == "ExactAdd":
            return self._add(model, t, cons)
        if op == "MaxPool":
            return self._maxpool(model, t, cons)
        if op == "ExactSumPool":
            return self._sumpool(model, t, cons)
        if op in ("Flatten", "Reshape"):
            return self._flatten(model, t, cons)
        return False

    def _elementwise(self, model, t, cons):
        params = [model.get_initializer(n) for n in cons.input[1:] if n]
        inst = getCustomOp(cons) if cons.domain else None
        if cons.op_type == "MinifloatThreshold":
            thr = params[0]
            axis = inst.get_nodeattr("channel_axis") % 4
            if thr is None or (thr.shape[0] != 1 and axis != 1):
                return False
            return self._move_past(model, [t], cons, lambda: inst.set_nodeattr("channel_axis", -1))
        if any(p is None or np.asarray(p).size != 1 for p in params):
            return False  # per-channel scales of QuantizeToFormat/Dequantize would need an axis change
        return self._move_past(model, [t], cons)

    def _add(self, model, t, cons):
        others = [n for n in cons.input if n != t.output[0]]
        if len(others) != 1:  # x + x
            return False
        other = others[0]
        producer = model.find_producer(other)
        const = model.get_initializer(other)
        if _is_to_nchw(producer) and len(model.find_consumers(other)) == 1:
            return self._move_past(model, [t, producer], cons)
        if const is not None:
            c = np.asarray(const)
            c = c.reshape([1] * (4 - c.ndim) + list(c.shape)) if c.ndim < 4 else c
            model.set_initializer(other, np.ascontiguousarray(np.transpose(c, TO_NHWC)))
            return self._move_past(model, [t], cons)
        return False

    def _maxpool(self, model, t, cons):
        attrs = {a.name: helper.get_attribute_value(a) for a in cons.attribute}
        if attrs.get("ceil_mode", 0) or any(d != 1 for d in attrs.get("dilations", [1, 1])) or len(cons.output) > 1:
            return False
        new = helper.make_node("MaxPoolNHWC", [cons.input[0]], [cons.output[0]], name=cons.name,
                               domain="qonnx.custom_op.general", **attrs)
        idx = list(model.graph.node).index(cons)
        model.graph.node.insert(idx, new)
        model.graph.node.remove(cons)
        return self._move_past(model, [t], model.graph.node[idx])  # protobuf inserts a copy

    def _sumpool(self, model, t, cons):
        inst = getCustomOp(cons)
        if inst.get_nodeattr("kernel"):
            return self._move_past(model, [t], cons)
        axes = inst.axes(model, 4)
        if axes != [2, 3]:
            return False
        axes_name = model.make_new_valueinfo_name()
        model.set_initializer(axes_name, np.asarray([1, 2], dtype=np.int64))
        return self._move_past(model, [t], cons, lambda: cons.input.__setitem__(1, axes_name))

    @staticmethod
    def _matmul_after_per_tensor_ops(model, tensor):
        """The ExactMatMul reached from ``tensor`` through a chain of single-consumer ops that treat every element
        alike (per-tensor requantizers, one-input ExactAdd rescaling, scalar (de)quantizers), else None: a row
        permutation of its weights commutes with them."""
        while True:
            consumers = model.find_consumers(tensor) or []
            if len(consumers) != 1:
                return None
            node = consumers[0]
            if node.op_type == "ExactMatMul":
                return node if node.input[0] == tensor else None
            params = [model.get_initializer(n) for n in node.input[1:] if n]
            if node.op_type == "ExactAdd" and len(node.input) == 1:
                pass
            elif node.op_type in ELEMENTWISE and all(p is not None for p in params) and \
                    (node.op_type == "MinifloatThreshold" and params[0].shape[0] == 1 or
                     node.op_type != "MinifloatThreshold" and all(np.asarray(p).size == 1 for p in params)):
                pass
            else:
                return None
            tensor = node.output[0]

    def _flatten(self, model, t, cons):
        n, c, h, w = model.get_tensor_shape(t.output[0])
        out_shape = model.get_tensor_shape(cons.output[0])
        if out_shape != [n, c * h * w]:
            return False
        if h * w > 1:
            mm = self._matmul_after_per_tensor_ops(model, cons.output[0])
            wts = None if mm is None else model.get_initializer(mm.input[1])
            if wts is None or wts.ndim != 2:
                return False
            rows = np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()
            model.set_initializer(mm.input[1], np.ascontiguousarray(wts[rows]))
        if cons.op_type == "Reshape":
            new = helper.make_node("Flatten", [t.input[0]], [cons.output[0]], name=cons.name, axis=1)
            model.graph.node.insert(list(model.graph.node).index(cons), new)
            model.graph.node.remove(cons)
        else:
            cons.input[0] = t.input[0]
        model.graph.node.remove(t)
        return True
