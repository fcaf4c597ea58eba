"""Handlers of the elementwise linear ops: ``Mul``, ``Div``, ``Add``, ``Sub``, ``Relu``, ``Clip``,
``BatchNormalization``.

They change no data: on an accumulator state they update its exact parameters ``a``, ``b`` (``y = a * acc + b``),
which the next quantizer folds into its thresholds:

* ``Mul`` of values by a positive constant is the scale of a legalized quantizer (``Vals.scale`` grows; the
  activation quantizers' map for passes/compare.py is recorded here); by any other constant ``a, b *= c``;
* ``Div`` by a nonzero constant ``a, b /= c``; ``Add`` / ``Sub`` of a constant shift ``b`` (``c - y`` negates ``a``);
* ``Add`` / ``Sub`` of two per-tensor scaled values tensors is ``ExactAdd`` with integer alignment coefficients
  ``k_x, k_y`` (the two integer steps divided by their rational gcd ``g``), ``a = g``; except an ``Add`` of a
  zero-padded values tensor and a quantized constant of the same format and scale that is zero wherever the padded
  tensor holds data (a class token in its slot, passes/hoist_quantizers.py): every sum has a zero term, so it is
  values of that format, and stays an ``Add`` on the values (``MinifloatReorder`` fills the slot in hardware);
* ``Relu`` marks the accumulator (the thresholds absorb it); on positively scaled values it stays a ``Relu``;
* ``Clip`` with constant bounds (ReLU6, ``torch.clamp``) records the bounds on the accumulator (values become one
  first, ``acc`` = their integers): the next quantizer is monotonic, so quantizing the clipped value is clamping
  its output index between the indices of the quantized bounds, which its thresholds absorb exactly;
* ``BatchNormalization`` with constant parameters: ``a, b`` -> ``a * m, b * m + (beta - mean * m)`` with
  ``m = gamma / sqrt(var + eps)`` in float64 (the one rounded parameter, docs/lowered_graph.md).

No linear op applies after a ReLU or a Clip (it would have to move past it): such nodes are refused, like float
inputs.
"""

import numpy as np
from qonnx.util.basic import get_by_name

from custom_ops.general import DOMAIN
from passes.lowering.handler import Refused
from passes.lowering.state import Aff, Flt, Vals, frac_gcd, fractions, is_scalar, scalar_of


def _const_operand(walker, node):
    """(index of the dynamic input, constant array) for a binary op with one float constant input, else None."""
    consts = [walker.init(t) for t in node.input]
    if consts[0] is None and consts[1] is not None and not isinstance(walker.get(node.input[1]), Vals):
        return 0, np.asarray(consts[1])
    if consts[1] is None and consts[0] is not None and not isinstance(walker.get(node.input[0]), Vals):
        return 1, np.asarray(consts[0])
    return None


def _affine_input(walker, node, tensor):
    """The Aff of a dynamic input a linear op can be applied to (refused: float input, after a ReLU)."""
    st = walker.get(tensor)
    if isinstance(st, Flt):
        raise Refused(node, f"input {tensor} is a float tensor")
    st = walker.to_aff(st, node)
    if st.relu or st.clip is not None:
        what = "ReLU" if st.relu else "Clip"
        raise Refused(node, f"input {tensor} is a {what} output; a linear op cannot move before the {what}")
    return st


def mul(walker, node):
    x = walker.get(node.input[0])
    # the scale Mul of a legalized quantizer: values x positive constant
    if isinstance(x, Vals) and walker.init(node.input[1]) is not None:
        c = np.asarray(walker.init(node.input[1]), dtype=np.float64)
        if np.all(c > 0):
            walker.state[node.output[0]] = Vals(x.name, x.fmt, x.scale * fractions(c), x.const)
            if node.input[0].endswith("_values") and not x.const:
                walker.lowered_map[node.output[0]] = {"values": x.name, "format": x.fmt.qonnx_name,
                                                      "scale": float(scalar_of(c)) if c.size == 1 else None}
            return
    found = _const_operand(walker, node)
    if found is None:
        raise Refused(node, "needs one dynamic input and one float constant")
    idx, c = found
    st = _affine_input(walker, node, node.input[idx])
    cf = fractions(c.astype(np.float64))
    walker.state[node.output[0]] = st.remap(st.a * cf, st.b * cf)


def div(walker, node):
    c = walker.init(node.input[1])
    st = walker.get(node.input[0])
    if c is None or walker.init(node.input[0]) is not None:
        raise Refused(node, "needs a dynamic dividend and a constant divisor")
    if isinstance(st, Flt):
        raise Refused(node, f"input {node.input[0]} is a float tensor")
    c = np.asarray(c, dtype=np.float64)
    if np.any(c == 0):
        raise Refused(node, f"divisor {node.input[1]} has zero entries")
    st = _affine_input(walker, node, node.input[0])
    inv = 1 / fractions(c)
    walker.state[node.output[0]] = st.remap(st.a * inv, st.b * inv)


def _exact_add(walker, node, x, y, sub):
    cx = x.unit()
    cy = y.unit() * (-1 if sub else 1)
    g = frac_gcd(cx, cy)
    kx, ky = cx / g, cy / g
    if kx.denominator != 1 or ky.denominator != 1 or max(abs(kx), abs(ky)) >= 2**62:
        raise Refused(node, f"the integer steps {cx} and {cy} of the two inputs align only with coefficients "
                            f"{kx}, {ky} (integers below 2^62 needed)")
    acc = walker.name(node.output[0] + "_acc")
    walker.emit("ExactAdd", [x.name, y.name], [acc], domain=DOMAIN, formats=[x.fmt.qonnx_name, y.fmt.qonnx_name],
                coeffs=[int(kx), int(ky)])
    walker.state[node.output[0]] = Aff(acc, walker.shape(node.output[0]), fractions(np.float64(0)) + g,
                                       fractions(np.float64(0.0)))


def _padding_mask(walker, st):
    """For values ``st`` produced by a zero ``Pad`` emitted in this walk: True where the Pad inserted zeros."""
    producer = next((n for n in reversed(walker.nodes) if st.name in n.output), None)
    if producer is None or producer.op_type != "Pad" or len(producer.input) < 2:
        return None
    pads = walker.init(producer.input[1])
    value = walker.init(producer.input[2]) if len(producer.input) > 2 and producer.input[2] else None
    if pads is None or (value is not None and np.any(np.asarray(value) != 0)):
        return None
    pads = np.asarray(pads).astype(int).ravel()
    rank = len(pads) // 2
    data = np.zeros(walker.shape(producer.input[0]), dtype=bool)
    return ~np.pad(~data, list(zip(pads[:rank], pads[rank:])), constant_values=False)


def _fills_padding(walker, x, y):
    """True when values ``x`` (dynamic, zero-padded) plus constant values ``y`` of the same format and scale have a
    zero term in every element."""
    if not (isinstance(x, Vals) and isinstance(y, Vals) and not x.const and y.const and x.fmt == y.fmt and
            is_scalar(x.scale) and is_scalar(y.scale) and scalar_of(x.scale) == scalar_of(y.scale)):
        return False
    mask = _padding_mask(walker, x)
    if mask is None:
        return False
    try:
        c = np.broadcast_to(np.asarray(walker.init(y.name)), mask.shape)
    except ValueError:
        return False
    return not np.any((c != 0) & ~mask)


def _add_sub(walker, node, sub):
    x, y = walker.get(node.input[0]), walker.get(node.input[1])
    if not sub and (_fills_padding(walker, x, y) or _fills_padding(walker, y, x)):
        out = walker.name(node.output[0])
        walker.emit("Add", [x.name, y.name], [out])
        walker.annotate(out, walker.shape(node.output[0]), x.fmt.datatype)
        walker.state[node.output[0]] = Vals(out, x.fmt, x.scale)
        return
    # two quantized tensors (activations or a quantized constant): exact aligned sum
    if isinstance(x, Vals) and isinstance(y, Vals) and is_scalar(x.scale) and is_scalar(y.scale):
        _exact_add(walker, node, x, y, sub)
        return
    found = _const_operand(walker, node)
    if found is None:
        raise Refused(node, "needs two per-tensor scaled quantized inputs, or one dynamic input and one float "
                            "constant")
    idx, c = found
    st = _affine_input(walker, node, node.input[idx])
    cf = fractions(c.astype(np.float64))
    if not sub:
        a, b = st.a, st.b + cf
    elif idx == 0:
        a, b = st.a, st.b - cf
    else:
        a, b = -st.a, cf - st.b
    walker.state[node.output[0]] = st.remap(a, b)


def add(walker, node):
    _add_sub(walker, node, False)


def sub(walker, node):
    _add_sub(walker, node, True)


def relu(walker, node):
    st = walker.get(node.input[0])
    if isinstance(st, Aff):
        clip = None if st.clip is None else tuple(None if v is None else max(v, 0) for v in st.clip)
        walker.state[node.output[0]] = st.remap(st.a, st.b, relu=True, clip=clip)
        return
    if isinstance(st, Vals) and not st.const and np.all(st.scale > 0):
        out = walker.name(node.output[0])
        walker.emit("Relu", [st.name], [out])
        walker.annotate(out, walker.shape(node.output[0]), st.fmt.datatype)
        walker.state[node.output[0]] = Vals(out, st.fmt, st.scale)
        return
    raise Refused(node, f"input {node.input[0]} is neither an accumulator nor positively scaled activation values")


def _clip_bound(walker, node, index, attr):
    """A Clip bound as an exact Fraction (None: unbounded), from input ``index`` (opset >= 11) or attribute."""
    if len(node.input) > index and node.input[index]:
        value = walker.init(node.input[index])
        if value is None or np.asarray(value).size != 1:
            raise Refused(node, f"bound {node.input[index]} is not a constant scalar")
        return fractions(np.float64(np.asarray(value).ravel()[0])).item()
    found = get_by_name(node.attribute, attr)
    return None if found is None else fractions(np.float64(found.f)).item()


def _clamp(v, lo, hi, unbounded):
    """min(max(v, lo), hi) with None bounds absent; ``v`` None (infinite) gives ``unbounded``."""
    if v is None:
        return unbounded
    v = v if lo is None else max(v, lo)
    return v if hi is None else min(v, hi)


def clip(walker, node):
    st = walker.get(node.input[0])
    if isinstance(st, Flt):
        raise Refused(node, f"input {node.input[0]} is a float tensor")
    if isinstance(st, Vals) and not (is_scalar(st.scale) and not st.const):
        raise Refused(node, f"input {node.input[0]} is not per-tensor scaled activation values")
    lo, hi = _clip_bound(walker, node, 1, "min"), _clip_bound(walker, node, 2, "max")
    if lo is not None and hi is not None and lo > hi:
        raise Refused(node, f"bounds min {lo} > max {hi}")
    st = walker.to_aff(st, node)
    if st.clip is not None:  # clip2(clip1(y)) = clip(y, clip2(lo1), clip2(hi1)): both monotonic
        lo, hi = (_clamp(st.clip[0], lo, hi, lo), _clamp(st.clip[1], lo, hi, hi))
    walker.state[node.output[0]] = st.remap(st.a, st.b, relu=st.relu, clip=(lo, hi))


def batch_normalization(walker, node):
    st = walker.get(node.input[0])
    if isinstance(st, Flt):
        raise Refused(node, f"input {node.input[0]} is a float tensor")
    params = [walker.init(t) for t in node.input[1:5]]
    if any(p is None for p in params):
        raise Refused(node, "scale, bias, mean and variance must be constants")
    st = _affine_input(walker, node, node.input[0])
    gamma, beta, mean, var = (np.asarray(p, dtype=np.float64) for p in params)
    eps = get_by_name(node.attribute, "epsilon")
    eps = float(eps.f) if eps is not None else 1e-5
    m = gamma / np.sqrt(var + np.float64(np.float32(eps)))
    shift = beta - mean * m
    rank = len(walker.shape(node.output[0]))
    bshape = [1, -1] + [1] * (rank - 2)
    mf, af = fractions(m.reshape(bshape)), fractions(shift.reshape(bshape))
    walker.state[node.output[0]] = st.remap(st.a * mf, st.b * mf + af)


HANDLERS = {"Mul": mul, "Div": div, "Add": add, "Sub": sub, "Relu": relu, "Clip": clip,
            "BatchNormalization": batch_normalization}
