"""Handlers of the matrix products: ``MatMul``, ``Gemm``, ``Conv``.

A product of per-tensor scaled values ``x`` and values ``W`` (a constant weight with one scale per output column, or
a per-tensor scaled activation) becomes ``ExactMatMul(x, W) -> acc`` with
``a = s_x 2^lsb_x * s_w[c] 2^lsb_w`` (times Gemm's ``alpha``) and ``b`` = the bias (times Gemm's ``beta``).
``Gemm`` with ``transB`` multiplies by a transposed copy of the weight. ``Conv`` (group 1, explicit pads) runs as
qonnx' ``LowerConvsToMatMul`` lays it out: Transpose to NHWC, qonnx ``Im2Col`` (unless 1x1, stride 1, no pad), an
``ExactMatMul`` with the weight reshaped to (kh * kw * ifm, ofm), and a Transpose back to NCHW kept pending on the
accumulator, so the requantizer works on NHWC channels. A depthwise ``Conv`` (group = input channels = output
channels C, depth multiplier 1) lowers the same way with an ``Im2Col`` marked ``depthwise = 1`` (always emitted, so
the hardware conversion finds the pair) and the block-diagonal weight ``W[k * C + c, c] = w[c, 0, kh, kw]``
(k = kh * kw_dim + kw): the product is exact and equal to the per-channel dot products, because the off-diagonal
zeros add nothing. ``InferMinifloatVVAU`` turns the pair into ``MinifloatVVAU``, which stores and multiplies only
the (K, C) per-channel weights. Other group counts are refused. Along a spatial axis where input and output have
size 1 (a 3x3 padded convolution on a 1x1 map) only the kernel tap that sees the pixel is kept; the others multiply
zero padding (``_one_tap_on_unit_axes``).

A ``MatMul`` / ``Gemm`` input may also be the exact sum of a pooling (``ExactSumPool``: average pooling, then
perhaps flatten, with no quantizer before the linear layer): the sum of quantized values is an integer of the
accumulator's ``INTn``, so the product takes it as values of that integer format with the scale ``a`` of the
average (``s 2^lsb / N``), folded into the next thresholds like any input scale. The integers move from the int64
accumulator to a values tensor (float32 container, exact up to 24 bits) through ``Dequantize`` with scale 1 and
offset 0, a cast that the hardware conversion removes (``passes.infer_stream_ops.RemoveIntegerCasts``).
"""

from fractions import Fraction

import numpy as np
from onnx import helper
from qonnx.custom_op.registry import getCustomOp

from compiler.numerics import as_fraction
from compiler.qonnx_formats import format_from_datatype
from custom_ops.general import DOMAIN
from passes.lowering.handler import Refused, node_attrs
from passes.lowering.state import Aff, Vals, fractions, is_scalar, scalar_of

#: widest pooled sum taken as integer values: float32 holds integers up to 2^24 exactly
MAX_POOLED_BITS = 24


def weight_columns(scale, shape):
    """Per-output-column exact scale of a constant (..., K, N) weight of scale ``scale``; None if it varies along K."""
    scale = np.broadcast_to(scale, shape)
    if scale.ndim < 2:
        return scale
    first = scale[..., :1, :]
    if not np.all(scale == first):
        return None
    return first.reshape(scale.shape[:-2] + (scale.shape[-1],))


def _check_input(node, x):
    if not (isinstance(x, Vals) and is_scalar(x.scale)):
        raise Refused(node, f"input {node.input[0]} is not a per-tensor scaled quantized tensor")


def pooled_sum_values(walker, st):
    """A ``Vals`` for an accumulator state that is the plain exact sum of a pooling (``a * acc`` with one positive
    ``a``, no offset, ReLU or clip): the integers of the sum (pending layout applied) as values of the accumulator's
    ``INTn``, scale ``a``; else ``st`` unchanged."""
    if not isinstance(st, Aff) or st.relu or st.clip is not None or not (is_scalar(st.a) and is_scalar(st.b)):
        return st
    a, b = scalar_of(st.a), scalar_of(st.b)
    producer = next((n for n in reversed(walker.nodes) if st.acc in n.output), None)
    if producer is None or producer.op_type != "ExactSumPool" or b != 0 or not a > 0:
        return st
    dt = getCustomOp(producer).acc_datatype(walker.model)
    if dt.bitwidth() > MAX_POOLED_BITS:
        return st
    cast = walker.name(st.acc + "_int")
    one, zero = walker.const("cast_a", np.float64(1.0)), walker.const("cast_b", np.float64(0.0))
    walker.emit("Dequantize", [st.acc, one, zero], [cast], domain=DOMAIN, input_kind="accumulator")
    walker.annotate(cast, st.acc_shape, dt)
    name = walker.apply_layout(cast, st.layout)
    walker.model.set_tensor_datatype(name, dt)
    return Vals(name, format_from_datatype(dt.name, producer.name), fractions(np.float64(0.0)) + a)


def _columns(node, w, scale, shape):
    """The per-column scale of the weight operand (refused: float, or scale varying along K)."""
    if not isinstance(w, Vals):
        raise Refused(node, f"weight {node.input[1]} is not quantized")
    if w.const:
        cols = weight_columns(scale, shape)
        if cols is None:
            raise Refused(node, f"the scale of weight {node.input[1]} varies along the reduction axis")
        return cols
    if is_scalar(w.scale):
        return w.scale.reshape(())
    raise Refused(node, f"dynamic weight {node.input[1]} is not per-tensor scaled")


def _emit_matmul(walker, x, w_name, w_fmt, out, cols, bias=None, alpha=1.0):
    acc = walker.name(out + "_acc")
    walker.emit("ExactMatMul", [x.name, w_name], [acc], domain=DOMAIN, input_format=x.fmt.qonnx_name,
                weight_format=w_fmt.qonnx_name)
    lsb = Fraction(2) ** (x.fmt.lsb_exponent + w_fmt.lsb_exponent)
    a = (scalar_of(x.scale) * lsb * as_fraction(alpha)) * np.asarray(cols, dtype=object)
    b = fractions(np.float64(0.0)) if bias is None else bias
    walker.state[out] = Aff(acc, walker.shape(out), a, b)


def matmul(walker, node):
    x, w = pooled_sum_values(walker, walker.get(node.input[0])), walker.get(node.input[1])
    _check_input(node, x)
    shape = walker.init(w.name).shape if isinstance(w, Vals) and w.const else None
    cols = _columns(node, w, w.scale if isinstance(w, Vals) else None, shape)
    _emit_matmul(walker, x, w.name, w.fmt, node.output[0], cols)


def gemm(walker, node):
    attrs = node_attrs(node)
    if attrs.get("transA", 0):
        raise Refused(node, "transA=1 is not supported")
    x, w = walker.get(node.input[0]), walker.get(node.input[1])
    if not (isinstance(w, Vals) and w.const):
        raise Refused(node, f"weight {node.input[1]} is not a quantized constant")
    if not (isinstance(x, Vals) and is_scalar(x.scale)):
        x = pooled_sum_values(walker, x)
    bias = None
    if len(node.input) > 2 and node.input[2]:
        c = walker.init(node.input[2])
        if c is None:
            raise Refused(node, f"bias {node.input[2]} is not a constant")
        bias = fractions(np.asarray(c, dtype=np.float64) * 1.0) * as_fraction(attrs.get("beta", 1.0))
    _check_input(node, x)
    weight = np.asarray(walker.init(w.name))
    scale = np.broadcast_to(w.scale, weight.shape)
    if attrs.get("transB", 0):
        weight, scale = weight.T, scale.T
    cols = _columns(node, w, scale, weight.shape)
    w_name = w.name
    if attrs.get("transB", 0):
        w_name = walker.const(w.name + "_T", np.ascontiguousarray(weight))
        walker.model.set_tensor_datatype(w_name, w.fmt.datatype)
    _emit_matmul(walker, x, w_name, w.fmt, node.output[0], cols, bias, attrs.get("alpha", 1.0))


def block_diagonal(w):
    """The (K * C, C) matrix of a depthwise weight w (C, 1, KH, KW): entry [k * C + c, c] = w[c, 0, k // KW, k % KW]
    (Im2Col's (kh, kw, c) order), zero elsewhere."""
    c, _, kh, kw = w.shape
    per_channel = w.reshape(c, kh * kw).T  # (K, C)
    out = np.zeros((kh * kw, c, c), dtype=w.dtype)
    out[:, np.arange(c), np.arange(c)] = per_channel
    return out.reshape(kh * kw * c, c)


def _one_tap_on_unit_axes(node, wv, in_hw, out_hw, strides, pads, dil):
    """(weight, strides, pads) with every spatial axis whose input and output have size 1 reduced to the one kernel
    tap that sees the pixel: the others see only zero padding, whose products are exact zeros, so the accumulator is
    unchanged (qonnx' Im2Col refuses a kernel longer than 1 or padding along a size-1 axis, e.g. a ResNet's 3x3
    convolutions on its last 1x1 map). Tap t sees input 0 of output 0 when t * dilation == pad at the axis' start."""
    pads, strides = list(pads), list(strides)
    for axis in (0, 1):
        k = wv.shape[2 + axis]
        if in_hw[axis] != 1 or out_hw[axis] != 1 or (k == 1 and pads[axis] == pads[axis + 2] == 0):
            continue
        tap, rem = divmod(pads[axis], dil[axis])
        if rem or tap >= k:
            raise Refused(node, f"along its {'HW'[axis]} axis of size 1 no kernel tap sees the input (only padding): "
                                "the output is the bias alone; remove the convolution")
        wv = np.take(wv, [tap], axis=2 + axis)
        pads[axis] = pads[axis + 2] = 0
        strides[axis] = 1
    return wv, strides, pads


def conv(walker, node):
    x, w = walker.get(node.input[0]), walker.get(node.input[1])
    attrs = node_attrs(node)
    group = int(attrs.get("group", 1))
    if not (isinstance(x, Vals) and isinstance(w, Vals) and w.const):
        raise Refused(node, "needs quantized input values and a quantized constant weight")
    _check_input(node, x)
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise Refused(node, "auto_pad is not supported; export with explicit pads")
    wv = np.asarray(walker.init(w.name))
    if wv.ndim != 4:
        raise Refused(node, f"weight of rank {wv.ndim}; only 2D convolutions (rank-4 weights) are supported")
    ofm, ifm, kh, kw = wv.shape
    depthwise = group != 1
    if depthwise and not (ifm == 1 and ofm == group and walker.shape(node.input[0])[1] == group):
        raise Refused(node, f"group={group} with weight shape {list(wv.shape)}: only group=1 or depthwise "
                            "(group = input channels = output channels) convolutions are supported")
    wscale = np.broadcast_to(w.scale, wv.shape)
    cols = wscale[:, :1, :1, :1]
    if not np.all(wscale == cols):
        raise Refused(node, f"the scale of weight {node.input[1]} varies within an output channel")
    b = fractions(np.float64(0.0))
    if len(node.input) > 2 and node.input[2]:
        c = walker.init(node.input[2])
        if c is None:
            raise Refused(node, f"bias {node.input[2]} is not a constant")
        b = fractions(np.asarray(c, dtype=np.float64).reshape(1, ofm, 1, 1))
    n, _, ih, iw = walker.shape(node.input[0])
    _, _, oh, ow = walker.shape(node.output[0])
    strides = list(attrs.get("strides", [1, 1]))
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    dil = list(attrs.get("dilations", [1, 1]))
    wv, strides, pads = _one_tap_on_unit_axes(node, wv, (ih, iw), (oh, ow), strides, pads, dil)
    kh, kw = wv.shape[2:]
    nhwc = walker.name(node.output[0] + "_nhwc_in")
    walker.emit("Transpose", [x.name], [nhwc], perm=[0, 2, 3, 1])
    cin = group if depthwise else ifm
    walker.annotate(nhwc, [n, ih, iw, cin], x.fmt.datatype)
    mm_in = nhwc
    if depthwise or any(pads) or kh != 1 or kw != 1 or any(s != 1 for s in strides):
        mm_in = walker.name(node.output[0] + "_im2col")
        walker.emit("Im2Col", [nhwc], [mm_in], domain="qonnx.custom_op.general", stride=strides,
                    kernel_size=[kh, kw], pad_amount=pads, input_shape=f"(1,{ih},{iw},{cin})", dilations=dil,
                    depthwise=int(depthwise))
        walker.annotate(mm_in, [n, oh, ow, kh * kw * cin], x.fmt.datatype)
    if depthwise:
        w_mm = block_diagonal(wv)
    else:
        w_mm = wv.transpose(0, 2, 3, 1).reshape(ofm, -1).T  # qonnx LowerConvsToMatMul's (kh, kw, ifm) order
    w_name = walker.const(w.name + "_matmul", np.ascontiguousarray(w_mm))
    walker.model.set_tensor_datatype(w_name, w.fmt.datatype)
    acc = walker.name(node.output[0] + "_acc")
    walker.emit("ExactMatMul", [mm_in, w_name], [acc], domain=DOMAIN, input_format=x.fmt.qonnx_name,
                weight_format=w.fmt.qonnx_name)
    lsb = Fraction(2) ** (x.fmt.lsb_exponent + w.fmt.lsb_exponent)
    a = (scalar_of(x.scale) * lsb) * np.asarray(cols, dtype=object).reshape(1, ofm, 1, 1)
    back = helper.make_node("Transpose", ["_"], ["_"], perm=[0, 3, 1, 2], name="conv_out_transpose")
    walker.state[node.output[0]] = Aff(acc, [n, oh, ow, ofm], a, b, False,
                                       [(back, [n, oh, ow, ofm], [n, ofm, oh, ow])])


HANDLERS = {"MatMul": matmul, "Gemm": gemm, "Conv": conv}
