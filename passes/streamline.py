"""FoldScalesIntoThresholds: rewrite a legalized graph (passes/legalize.py) into exact integer arithmetic between
quantizers, every quantizer a threshold comparison in its accumulator's integer domain.

How: one walk over the nodes in topological order that tracks, for every tensor of the legalized graph, what the
lowered graph holds for it:

* ``Vals``  -- a tensor of unscaled format values ``v`` and an exact scale: ``tensor = scale * v``;
* ``Aff``   -- an exact integer accumulator ``acc`` and exact rational ``a``, ``b`` (per channel):
  ``tensor = layout(relu?(a * acc + b))``, ``layout`` a list of pending data-movement ops (Transpose / Reshape /
  Flatten ...) that are applied to the requantized values instead of the integers;
* ``Flt``   -- a plain float tensor (graph input, float islands such as Softmax/LayerNorm/GELU in a transformer).

Linear ops update ``a``, ``b`` symbolically (Mul/Div/Add/Sub by constants, BatchNormalization, Gemm's alpha/beta and
bias, Conv bias); MatMul / Gemm / Conv on values become ``ExactMatMul`` (Conv via Transpose + qonnx ``Im2Col``, the
layout of qonnx' ``LowerConvsToMatMul``), adds of two quantized tensors ``ExactAdd`` with integer alignment
coefficients, average pools ``ExactSumPool``; ReLU is absorbed into the next thresholds; data movement on values
(Transpose, Reshape, MaxPool, Pad with zeros, ...) stays as it is. A quantizer on an ``Aff`` becomes
``MinifloatThreshold`` with thresholds from passes/thresholds.py. Whatever cannot be expressed exactly becomes a
float island: its inputs are dequantized (``Dequantize``), the node runs as in QONNX, the next quantizer is a
``QuantizeToFormat`` again.

Why not FINN's streamlining (MoveScalarMulPastMatMul, AbsorbAddIntoMultiThreshold, ...): those rewrite fp32
initializers and round thresholds in fp32; minifloat accumulators exceed fp32's 24-bit integers and the
round-half-to-even ties of the output format need exact comparisons, so the scale algebra here is done on exact
rationals. FINN/qonnx transformations are reused around it (InferShapes, InferDataTypes, Im2Col, cleanup).
"""

import copy
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import onnx.helper as helper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from compiler.errors import UnsupportedNodeError
from compiler.numerics import format_from_datatype
from custom_ops.general import DOMAIN
from passes.thresholds import as_fraction, requant_thresholds

LAYOUT_OPS = ("Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity")
VALUE_MOVE_OPS = LAYOUT_OPS + ("MaxPool", "Pad", "Gather", "Slice")
LOWERED_MAP_KEY = "minifinn_lowered_quantizers"

_frac = np.vectorize(as_fraction, otypes=[object])


def fractions(x):
    """Object array of exact Fractions from a number / array."""
    return _frac(np.asarray(x, dtype=object) if not isinstance(x, np.ndarray) else x.astype(object))


def _is_scalar(arr):
    return np.asarray(arr).size == 1


def _scalar(arr):
    return np.asarray(arr, dtype=object).ravel()[0]


@dataclass
class Vals:
    name: str
    fmt: object
    scale: np.ndarray  # object array of Fractions, broadcastable to the tensor
    const: bool = False

    def __post_init__(self):
        self.scale = np.asarray(self.scale, dtype=object)


@dataclass
class Aff:
    acc: str
    acc_shape: list
    a: np.ndarray  # object arrays of Fractions, broadcastable to the logical shape
    b: np.ndarray
    relu: bool = False
    layout: list = field(default_factory=list)  # [(node copy, pre_shape, post_shape)]

    def __post_init__(self):
        self.a = np.asarray(self.a, dtype=object)
        self.b = np.asarray(self.b, dtype=object)


@dataclass
class Flt:
    name: str


class FoldScalesIntoThresholds(Transformation):
    """Lower a legalized graph to exact integer arithmetic + thresholds (module docstring)."""

    def apply(self, model):
        walker = _Walker(model)
        walker.run()
        # one walk lowers the whole graph; (model, False) stops qonnx' apply-until-unchanged loop
        return model, False


class _Walker:
    def __init__(self, model):
        self.model = model
        self.nodes = []
        self.state = {}
        self.counter = 0
        self.lowered_map = {}

    # --- helpers ----------------------------------------------------------------------------------------------
    def name(self, hint):
        self.counter += 1
        return f"{hint}_l{self.counter}"

    def emit(self, op_type, inputs, outputs, domain="", **attrs):
        node = helper.make_node(op_type, inputs, outputs, name=self.name(op_type), **attrs)
        if domain:
            node.domain = domain
        self.nodes.append(node)
        return node

    def const(self, hint, array):
        name = self.name(hint)
        self.model.set_initializer(name, np.asarray(array))
        return name

    def shape(self, tensor):
        return list(self.model.get_tensor_shape(tensor))

    def init(self, tensor):
        return self.model.get_initializer(tensor) if tensor else None

    def get(self, tensor):
        if tensor in self.state:
            return self.state[tensor]
        value = self.init(tensor)
        if value is not None:
            dt = self.model.get_tensor_datatype(tensor)
            if dt.name.startswith("FLOAT<") or (dt.is_integer() and dt.bitwidth() <= 8 and dt.name != "BIPOLAR"):
                st = Vals(tensor, format_from_datatype(dt.name, tensor), fractions(np.float64(1.0)), const=True)
            else:
                st = Flt(tensor)
            self.state[tensor] = st
            return st
        return Flt(tensor)

    def acc_range(self, tensor):
        """(lo, hi) of an accumulator produced by an exact op emitted in this walk (data-aware for constant weights,
        as ``passes.datatypes.accumulator_range``), else None. Thresholds computed with it are clipped to it at once:
        the same values ``ClipThresholdsToAccumulator`` leaves afterwards, but a threshold far outside the range of
        a wide (5-6 exponent bit) accumulator no longer has to be representable in int64 first."""
        from passes.datatypes import accumulator_range

        producer = next((n for n in reversed(self.nodes) if tensor in n.output), None)
        return None if producer is None else accumulator_range(self.model, tensor, producer)

    @staticmethod
    def where(node):
        return f"{node.op_type} {node.name}"

    # --- conversions ------------------------------------------------------------------------------------------
    def params_to_acc(self, st):
        """(a, b) of an Aff mapped from logical coordinates to the accumulator's coordinates."""
        a, b = st.a, st.b
        for node, pre, post in reversed(st.layout):
            if _is_scalar(a) and _is_scalar(b):
                break
            full = [1] + list(post[1:])
            a = np.broadcast_to(a, full) if a.ndim <= len(full) else a
            b = np.broadcast_to(b, full) if b.ndim <= len(full) else b
            if node.op_type == "Transpose":
                perm = list(get_by_name(node.attribute, "perm").ints)
                inv = list(np.argsort(perm))
                a, b = a.transpose(inv), b.transpose(inv)
            else:
                a, b = a.reshape([1] + list(pre[1:])), b.reshape([1] + list(pre[1:]))
        return a, b

    def apply_layout(self, tensor, layout):
        for node, pre, post in layout:
            new = copy.deepcopy(node)
            out = self.name(tensor + "_" + node.op_type.lower())
            new.input[0] = tensor
            new.output[0] = out
            new.name = self.name(node.name)
            self.nodes.append(new)
            self.model.set_tensor_shape(out, list(post))
            tensor = out
        return tensor

    def materialize(self, st, out=None):
        """A float tensor equal to the state's value (QONNX' fp32 value for Vals)."""
        if isinstance(st, Flt):
            if out is not None:
                self.emit("Identity", [st.name], [out])
                return out
            return st.name
        if isinstance(st, Vals):
            scale = np.asarray(st.scale.astype(np.float64), dtype=np.float32)
            target = out or self.name(st.name + "_deq")
            self.emit("Dequantize", [st.name, self.const("deq_scale", scale)], [target], domain=DOMAIN,
                      input_kind="values")
            return target
        a, b = self.params_to_acc(st)
        a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        tmp = self.name(st.acc + "_deq") if st.layout or out is None else out
        self.emit("Dequantize", [st.acc, self.const("deq_a", a64), self.const("deq_b", b64)], [tmp],
                  domain=DOMAIN, input_kind="accumulator", relu=int(st.relu))
        res = self.apply_layout(tmp, st.layout)
        if out is not None and res != out:
            self.emit("Identity", [res], [out])
            return out
        return res

    def to_aff(self, st, node):
        """An Aff for a Vals (acc = its integers, via ExactAdd with coefficient 1)."""
        if isinstance(st, Aff):
            return st
        if not isinstance(st, Vals):
            raise UnsupportedNodeError(f"{self.where(node)}: internal: expected quantized values")
        acc = self.name(st.name + "_int")
        self.emit("ExactAdd", [st.name], [acc], domain=DOMAIN, formats=[st.fmt.qonnx_name], coeffs=[1])
        a = st.scale * Fraction(2) ** st.fmt.lsb_exponent
        return Aff(acc, self.shape(st.name) if not st.const else list(self.init(st.name).shape), a,
                   fractions(np.float64(0.0)))

    def float_island(self, node):
        """Run ``node`` as in QONNX on dequantized inputs; its outputs become float tensors."""
        new = copy.deepcopy(node)
        for i, tensor in enumerate(node.input):
            if not tensor:
                continue
            st = self.get(tensor)
            if self.init(tensor) is not None and not isinstance(st, Vals):
                continue  # a float constant
            new.input[i] = self.materialize(st)
        self.nodes.append(new)
        for out in node.output:
            self.state[out] = Flt(out)

    # --- the walk ---------------------------------------------------------------------------------------------
    def run(self):
        model = self.model
        graph = model.graph
        for node in list(graph.node):
            handler = getattr(self, f"op_{node.op_type}", None)
            done = False
            if handler is not None:
                done = handler(node)
            if not done:
                self.float_island(node)
        for out in graph.output:
            st = self.get(out.name)
            if isinstance(st, Flt) and st.name == out.name:
                continue
            self.materialize(st, out=out.name)
        del graph.node[:]
        graph.node.extend(self.nodes)
        model.set_metadata_prop(LOWERED_MAP_KEY, _json(self.lowered_map))

    # --- quantizers -------------------------------------------------------------------------------------------
    def op_QuantizeToFormat(self, node):
        fmt = format_from_datatype(get_by_name(node.attribute, "format").s.decode(), self.where(node))
        scale = self.init(node.input[1])
        st = self.get(node.input[0])
        out = node.output[0]
        if isinstance(st, Flt) or not _is_scalar(scale):
            # float input, or a per-channel activation scale (no threshold form here): quantize on the float value
            new = copy.deepcopy(node)
            new.input[0] = self.materialize(st)
            self.nodes.append(new)
            self.state[out] = Vals(out, fmt, fractions(np.float64(1.0)))
            return True
        st = self.to_aff(st, node)
        a, b = self.params_to_acc(st)
        axis, a_c, b_c = _channel_vectors(a, b, len(st.acc_shape), self.where(node))
        thresholds, signs = requant_thresholds(fmt, float(np.asarray(scale).ravel()[0]), a_c, b_c, relu=st.relu,
                                               acc_range=self.acc_range(st.acc))
        t_name = self.const(out + "_thresholds", thresholds)
        vals = self.name(out)
        attrs = dict(out_format=fmt.qonnx_name, channel_axis=axis)
        if any(s < 0 for s in signs):
            attrs["channel_signs"] = [int(s) for s in signs]
        self.emit("MinifloatThreshold", [st.acc, t_name], [vals], domain=DOMAIN, **attrs)
        self.model.set_tensor_datatype(vals, fmt.datatype)
        self.model.set_tensor_shape(vals, list(st.acc_shape))
        final = self.apply_layout(vals, st.layout)
        self.state[out] = Vals(final, fmt, fractions(np.float64(1.0)))
        return True

    # --- elementwise linear ops -------------------------------------------------------------------------------
    def _const_operand(self, node):
        """(index of the dynamic input, constant array) for a binary op with one constant input, else None."""
        consts = [self.init(t) for t in node.input]
        if consts[0] is None and consts[1] is not None and not isinstance(self.get(node.input[1]), Vals):
            return 0, np.asarray(consts[1])
        if consts[1] is None and consts[0] is not None and not isinstance(self.get(node.input[0]), Vals):
            return 1, np.asarray(consts[0])
        return None

    def op_Mul(self, node):
        x = self.get(node.input[0])
        # the scale Mul of a legalized quantizer: values x positive constant
        if isinstance(x, Vals) and self.init(node.input[1]) is not None:
            c = np.asarray(self.init(node.input[1]), dtype=np.float64)
            if np.all(c > 0):
                self.state[node.output[0]] = Vals(x.name, x.fmt, x.scale * fractions(c), x.const)
                if node.input[0].endswith("_values") and not x.const:
                    self.lowered_map[node.output[0]] = {"values": x.name, "format": x.fmt.qonnx_name,
                                                        "scale": float(_scalar(c)) if c.size == 1 else None}
                return True
        found = self._const_operand(node)
        if found is None:
            return False
        idx, c = found
        st = self.get(node.input[idx])
        if isinstance(st, Flt):
            return False
        st = self.to_aff(st, node)
        if st.relu:
            return False
        cf = fractions(c.astype(np.float64))
        self.state[node.output[0]] = Aff(st.acc, st.acc_shape, st.a * cf, st.b * cf, False, st.layout)
        return True

    def op_Div(self, node):
        c = self.init(node.input[1])
        st = self.get(node.input[0])
        if c is None or isinstance(st, Flt) or self.init(node.input[0]) is not None:
            return False
        c = np.asarray(c, dtype=np.float64)
        if np.any(c == 0):
            return False
        st = self.to_aff(st, node)
        if st.relu:
            return False
        inv = 1 / fractions(c)
        self.state[node.output[0]] = Aff(st.acc, st.acc_shape, st.a * inv, st.b * inv, False, st.layout)
        return True

    def _add_sub(self, node, sub):
        x, y = self.get(node.input[0]), self.get(node.input[1])
        # two quantized tensors (activations or a quantized constant): exact aligned sum
        if isinstance(x, Vals) and isinstance(y, Vals) and _is_scalar(x.scale) and _is_scalar(y.scale):
            return self._exact_add(node, x, y, sub)
        found = self._const_operand(node)
        if found is None:
            return False
        idx, c = found
        st = self.get(node.input[idx])
        if isinstance(st, Flt):
            return False
        st = self.to_aff(st, node)
        if st.relu:
            return False
        cf = fractions(c.astype(np.float64))
        if not sub:
            a, b = st.a, st.b + cf
        elif idx == 0:
            a, b = st.a, st.b - cf
        else:
            a, b = -st.a, cf - st.b
        self.state[node.output[0]] = Aff(st.acc, st.acc_shape, a, b, False, st.layout)
        return True

    def _exact_add(self, node, x, y, sub):
        cx = _scalar(x.scale) * Fraction(2) ** x.fmt.lsb_exponent
        cy = _scalar(y.scale) * Fraction(2) ** y.fmt.lsb_exponent * (-1 if sub else 1)
        g = _frac_gcd(cx, cy)
        kx, ky = cx / g, cy / g
        if kx.denominator != 1 or ky.denominator != 1 or max(abs(kx), abs(ky)) >= 2**62:
            return False
        acc = self.name(node.output[0] + "_acc")
        self.emit("ExactAdd", [x.name, y.name], [acc], domain=DOMAIN, formats=[x.fmt.qonnx_name, y.fmt.qonnx_name],
                  coeffs=[int(kx), int(ky)])
        self.state[node.output[0]] = Aff(acc, self.shape(node.output[0]), fractions(np.float64(0)) + g,
                                         fractions(np.float64(0.0)))
        return True

    def op_Add(self, node):
        return self._add_sub(node, False)

    def op_Sub(self, node):
        return self._add_sub(node, True)

    def op_Relu(self, node):
        st = self.get(node.input[0])
        if isinstance(st, Aff):
            self.state[node.output[0]] = Aff(st.acc, st.acc_shape, st.a, st.b, True, st.layout)
            return True
        if isinstance(st, Vals) and not st.const and np.all(st.scale > 0):
            out = self.name(node.output[0])
            self.emit("Relu", [st.name], [out])
            self.model.set_tensor_shape(out, self.shape(node.output[0]))
            self.model.set_tensor_datatype(out, st.fmt.datatype)
            self.state[node.output[0]] = Vals(out, st.fmt, st.scale)
            return True
        return False

    def op_BatchNormalization(self, node):
        st = self.get(node.input[0])
        if isinstance(st, Flt):
            return False
        params = [self.init(t) for t in node.input[1:5]]
        if any(p is None for p in params):
            return False
        st = self.to_aff(st, node)
        if st.relu:
            return False
        gamma, beta, mean, var = (np.asarray(p, dtype=np.float64) for p in params)
        eps = get_by_name(node.attribute, "epsilon")
        eps = float(eps.f) if eps is not None else 1e-5
        mul = gamma / np.sqrt(var + np.float64(np.float32(eps)))
        add = beta - mean * mul
        rank = len(self.shape(node.output[0]))
        bshape = [1, -1] + [1] * (rank - 2)
        mf, af = fractions(mul.reshape(bshape)), fractions(add.reshape(bshape))
        self.state[node.output[0]] = Aff(st.acc, st.acc_shape, st.a * mf, st.b * mf + af, False, st.layout)
        return True

    # --- matrix products --------------------------------------------------------------------------------------
    def _weight_columns(self, w, node):
        """Per-output-column exact scale of a constant weight (K, N) Vals; None if it varies along K."""
        scale = np.broadcast_to(w.scale, self.init(w.name).shape)
        if scale.ndim < 2:
            return scale
        first = scale[..., :1, :]
        if not np.all(scale == first):
            return None
        return first.reshape(scale.shape[:-2] + (scale.shape[-1],))

    def _matmul(self, node, x, w, w_name, out, bias=None, alpha=1.0):
        if not (isinstance(x, Vals) and isinstance(w, Vals) and _is_scalar(x.scale)):
            return False
        if w.const:
            cols = self._weight_columns(w, node)
            if cols is None:
                return False
        elif _is_scalar(w.scale):
            cols = w.scale.reshape(())
        else:
            return False
        acc = self.name(out + "_acc")
        self.emit("ExactMatMul", [x.name, w_name], [acc], domain=DOMAIN, input_format=x.fmt.qonnx_name,
                  weight_format=w.fmt.qonnx_name)
        lsb = Fraction(2) ** (x.fmt.lsb_exponent + w.fmt.lsb_exponent)
        a = (_scalar(x.scale) * lsb * as_fraction(alpha)) * np.asarray(cols, dtype=object)
        b = fractions(np.float64(0.0)) if bias is None else bias
        self.state[out] = Aff(acc, self.shape(out), a, b)
        return True

    def op_MatMul(self, node):
        x, w = self.get(node.input[0]), self.get(node.input[1])
        return self._matmul(node, x, w, w.name if isinstance(w, Vals) else "", node.output[0])

    def op_Gemm(self, node):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("transA", 0):
            return False
        x, w = self.get(node.input[0]), self.get(node.input[1])
        if not (isinstance(w, Vals) and w.const):
            return False
        w_name = w.name
        if attrs.get("transB", 0):
            wt = np.ascontiguousarray(np.asarray(self.init(w.name)).T)
            w_name = self.const(w.name + "_T", wt)
            self.model.set_tensor_datatype(w_name, w.fmt.datatype)
            scale = np.broadcast_to(w.scale, self.init(w.name).shape).T
            w = Vals(w_name, w.fmt, scale, True)
        bias = None
        if len(node.input) > 2 and node.input[2]:
            c = self.init(node.input[2])
            if c is None:
                return False
            bias = fractions(np.asarray(c, dtype=np.float64) * 1.0) * as_fraction(attrs.get("beta", 1.0))
        return self._matmul(node, x, w, w_name, node.output[0], bias, attrs.get("alpha", 1.0))

    def op_Conv(self, node):
        x, w = self.get(node.input[0]), self.get(node.input[1])
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("group", 1) != 1 or not (isinstance(x, Vals) and isinstance(w, Vals) and w.const):
            return False
        if not _is_scalar(x.scale) or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            return False
        wv = np.asarray(self.init(w.name))
        if wv.ndim != 4:
            return False
        ofm, ifm, kh, kw = wv.shape
        wscale = np.broadcast_to(w.scale, wv.shape)
        cols = wscale[:, :1, :1, :1]
        if not np.all(wscale == cols):
            return False
        n, _, ih, iw = self.shape(node.input[0])
        _, _, oh, ow = self.shape(node.output[0])
        strides = list(attrs.get("strides", [1, 1]))
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        dil = list(attrs.get("dilations", [1, 1]))
        nhwc = self.name(node.output[0] + "_nhwc_in")
        self.emit("Transpose", [x.name], [nhwc], perm=[0, 2, 3, 1])
        self.model.set_tensor_shape(nhwc, [n, ih, iw, ifm])
        self.model.set_tensor_datatype(nhwc, x.fmt.datatype)
        mm_in = nhwc
        if any(pads) or kh != 1 or kw != 1 or any(s != 1 for s in strides):
            mm_in = self.name(node.output[0] + "_im2col")
            self.emit("Im2Col", [nhwc], [mm_in], domain="qonnx.custom_op.general", stride=strides,
                      kernel_size=[kh, kw], pad_amount=pads, input_shape=f"(1,{ih},{iw},{ifm})", dilations=dil)
            self.model.set_tensor_datatype(mm_in, x.fmt.datatype)
            self.model.set_tensor_shape(mm_in, [n, oh, ow, kh * kw * ifm])
        w_mm = wv.transpose(0, 2, 3, 1).reshape(ofm, -1).T  # qonnx LowerConvsToMatMul's (kh, kw, ifm) order
        w_name = self.const(w.name + "_matmul", np.ascontiguousarray(w_mm))
        self.model.set_tensor_datatype(w_name, w.fmt.datatype)
        acc = self.name(node.output[0] + "_acc")
        self.emit("ExactMatMul", [mm_in, w_name], [acc], domain=DOMAIN, input_format=x.fmt.qonnx_name,
                  weight_format=w.fmt.qonnx_name)
        lsb = Fraction(2) ** (x.fmt.lsb_exponent + w.fmt.lsb_exponent)
        a = (_scalar(x.scale) * lsb) * np.asarray(cols, dtype=object).reshape(1, ofm, 1, 1)
        b = fractions(np.float64(0.0))
        if len(node.input) > 2 and node.input[2]:
            c = self.init(node.input[2])
            if c is None:
                return False
            b = fractions(np.asarray(c, dtype=np.float64).reshape(1, ofm, 1, 1))
        back = helper.make_node("Transpose", ["_"], ["_"], perm=[0, 3, 1, 2], name="conv_out_transpose")
        self.state[node.output[0]] = Aff(acc, [n, oh, ow, ofm], a, b, False,
                                         [(back, [n, oh, ow, ofm], [n, ofm, oh, ow])])
        return True

    # --- pooling ----------------------------------------------------------------------------------------------
    def _sum_pool(self, node, st, window, axes=None, kernel=None):
        acc = self.name(node.output[0] + "_acc")
        if kernel:
            self.emit("ExactSumPool", [st.name], [acc], domain=DOMAIN, format=st.fmt.qonnx_name, kernel=kernel)
        else:
            axes_name = self.const("pool_axes", np.array(axes, dtype=np.int64))
            self.emit("ExactSumPool", [st.name, axes_name], [acc], domain=DOMAIN, format=st.fmt.qonnx_name)
        a = _scalar(st.scale) * Fraction(2) ** st.fmt.lsb_exponent / window
        return acc, fractions(np.float64(0.0)) + a

    def op_GlobalAveragePool(self, node):
        st = self.get(node.input[0])
        if not (isinstance(st, Vals) and _is_scalar(st.scale)):
            return False
        shape = self.shape(node.input[0])
        acc, a = self._sum_pool(node, st, int(np.prod(shape[2:])), axes=list(range(2, len(shape))))
        self.state[node.output[0]] = Aff(acc, self.shape(node.output[0]), a, fractions(np.float64(0.0)))
        return True

    def op_ReduceMean(self, node):
        st = self.get(node.input[0])
        if not (isinstance(st, Vals) and _is_scalar(st.scale)):
            return False
        shape = self.shape(node.input[0])
        axes = get_by_name(node.attribute, "axes")
        axes = list(axes.ints) if axes is not None else (
            [int(v) for v in np.asarray(self.init(node.input[1])).ravel()] if len(node.input) > 1 and node.input[1]
            else list(range(len(shape))))
        axes = sorted(a % len(shape) for a in axes)
        if 0 in axes:
            return False
        keep = get_by_name(node.attribute, "keepdims")
        keep = 1 if keep is None else keep.i
        acc, a = self._sum_pool(node, st, int(np.prod([shape[i] for i in axes])), axes=axes)
        kept = [1 if i in axes else d for i, d in enumerate(shape)]
        layout = []
        if not keep:
            post = self.shape(node.output[0])
            squeeze = helper.make_node("Reshape", ["_", self.const("squeeze_shape", np.array([0] + post[1:]))],
                                       ["_"], name="reduce_squeeze")
            layout.append((squeeze, kept, post))
        self.state[node.output[0]] = Aff(acc, kept, a, fractions(np.float64(0.0)), False, layout)
        return True

    def op_AveragePool(self, node):
        st = self.get(node.input[0])
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        kernel = list(attrs.get("kernel_shape", []))
        if not (isinstance(st, Vals) and _is_scalar(st.scale)) or len(kernel) != 2:
            return False
        if list(attrs.get("strides", kernel)) != kernel or any(attrs.get("pads", [0])):
            return False
        shape = self.shape(node.input[0])
        if shape[2] % kernel[0] or shape[3] % kernel[1]:
            return False
        acc, a = self._sum_pool(node, st, kernel[0] * kernel[1], kernel=kernel)
        self.state[node.output[0]] = Aff(acc, self.shape(node.output[0]), a, fractions(np.float64(0.0)))
        return True

    # --- data movement ----------------------------------------------------------------------------------------
    def _move(self, node):
        st = self.get(node.input[0])
        if isinstance(st, Flt):
            return False
        if isinstance(st, Aff) and node.op_type in LAYOUT_OPS:
            if any(self.init(t) is None for t in node.input[1:] if t):
                return False
            entry = (copy.deepcopy(node), self.shape(node.input[0]), self.shape(node.output[0]))
            a, b = st.a, st.b
            if node.op_type == "Transpose" and not (_is_scalar(a) and _is_scalar(b)):
                rank = len(entry[1])
                perm = list(get_by_name(node.attribute, "perm").ints)
                a = np.broadcast_to(a, [1] * (rank - a.ndim) + list(a.shape)).transpose(perm)
                b = np.broadcast_to(b, [1] * (rank - b.ndim) + list(b.shape)).transpose(perm)
            elif not (_is_scalar(a) and _is_scalar(b)):
                pre, post = entry[1], entry[2]
                full_pre, full_post = [1] + list(pre[1:]), [1] + list(post[1:])
                a = np.broadcast_to(a, full_pre).reshape(full_post)
                b = np.broadcast_to(b, full_pre).reshape(full_post)
            self.state[node.output[0]] = Aff(st.acc, st.acc_shape, a, b, st.relu, st.layout + [entry])
            return True
        if isinstance(st, Vals) and _is_scalar(st.scale) and not st.const:
            if node.op_type == "Pad" and not _zero_pad(self, node):
                return False
            new = copy.deepcopy(node)
            new.input[0] = st.name
            new.output[0] = self.name(node.output[0])
            new.name = self.name(node.name)
            self.nodes.append(new)
            self.model.set_tensor_shape(new.output[0], self.shape(node.output[0]))
            self.model.set_tensor_datatype(new.output[0], st.fmt.datatype)
            self.state[node.output[0]] = Vals(new.output[0], st.fmt, st.scale)
            return True
        return False


for _op in VALUE_MOVE_OPS:
    setattr(_Walker, f"op_{_op}", _Walker._move)


def _zero_pad(walker, node):
    mode = get_by_name(node.attribute, "mode")
    if mode is not None and mode.s.decode() != "constant":
        return False
    if len(node.input) > 2 and node.input[2]:
        value = walker.init(node.input[2])
        return value is not None and np.all(np.asarray(value) == 0)
    return True


def _frac_gcd(x, y):
    """Greatest rational g with x/g and y/g integers (x, y nonzero dyadic/rational)."""
    from math import gcd, lcm

    x, y = Fraction(x), Fraction(y)
    return Fraction(gcd(abs(x.numerator), abs(y.numerator)), lcm(x.denominator, y.denominator))


def _channel_vectors(a, b, rank, where):
    """(channel axis, per-channel a, per-channel b) of accumulator-coordinate parameters (scalar -> one channel)."""
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    shape = np.broadcast_shapes(a.shape, b.shape)
    shape = (1,) * (rank - len(shape)) + tuple(shape)
    a, b = np.broadcast_to(a, shape), np.broadcast_to(b, shape)
    varying = [ax for ax in range(rank) if shape[ax] > 1 and (
        np.any(a != np.take(a, [0], axis=ax)) or np.any(b != np.take(b, [0], axis=ax)))]
    if not varying:
        return -1, [a.ravel()[0]], [b.ravel()[0]]
    if len(varying) > 1:
        raise UnsupportedNodeError(
            f"{where}: the scale/bias before this quantizer varies along axes {varying} of the accumulator; a "
            "threshold requantizer needs per-tensor or per-channel (one axis) parameters"
        )
    ax = varying[0]
    index = [0] * rank
    av, bv = [], []
    for c in range(shape[ax]):
        index[ax] = c
        av.append(a[tuple(index)])
        bv.append(b[tuple(index)])
    return ax - rank, av, bv


def _json(obj):
    import json

    return json.dumps(obj, sort_keys=True)
