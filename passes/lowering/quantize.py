"""Handler of ``QuantizeToFormat`` (an activation quantizer of the legalized graph).

On an accumulator state (``Aff``, or values converted to one) with a per-tensor scale ``s`` the quantizer becomes
``MinifloatThreshold(acc, T)``, ``T`` the exact integer thresholds of ``fmt.round(relu?(a * acc + b) / s)``
(``passes.thresholds.requant_thresholds``, clipped to the accumulator's range), one row per channel of the axis the
parameters vary along, ``channel_signs`` for negative ``a``, and the exact affine map itself (``affine``, ``relu``:
what requantization by conversion needs; not recorded after a ``Clip``, whose bounds only the thresholds hold);
pending data movement is applied to its output. On a
float input, or with a per-channel activation scale (no threshold form), the quantizer stays a ``QuantizeToFormat``
on the float value. Either way the output is a ``Vals`` with scale 1: the legalized ``Mul`` by the scale follows.
"""

import copy

import numpy as np
from qonnx.util.basic import get_by_name

from compiler.qonnx_formats import format_from_datatype
from custom_ops.general import DOMAIN
from passes.lowering.handler import where
from passes.lowering.state import Flt, Vals, channel_vectors, fractions, is_scalar, params_to_acc
from passes.thresholds import requant_affine, requant_thresholds


def quantize_to_format(walker, node):
    fmt = format_from_datatype(get_by_name(node.attribute, "format").s.decode(), where(node))
    scale = walker.init(node.input[1])
    st = walker.get(node.input[0])
    out = node.output[0]
    if isinstance(st, Flt) or not is_scalar(scale):
        new = copy.deepcopy(node)
        new.input[0] = walker.materialize(st)
        walker.append(new)
        walker.state[out] = Vals(out, fmt, fractions(np.float64(1.0)))
        return
    st = walker.to_aff(st, node)
    a, b = params_to_acc(st)
    axis, a_c, b_c = channel_vectors(a, b, len(st.acc_shape), where(node))
    s_out = float(np.asarray(scale).ravel()[0])
    thresholds, signs = requant_thresholds(fmt, s_out, a_c, b_c, relu=st.relu, acc_range=walker.acc_range(st.acc),
                                           clip=st.clip)
    t_name = walker.const(out + "_thresholds", thresholds)
    vals = walker.name(out)
    attrs = dict(out_format=fmt.qonnx_name, channel_axis=axis, relu=int(bool(st.relu)))
    if st.clip is None:  # conversion computes round(relu?(affine)); a clip has the thresholds only
        attrs["affine"] = requant_affine(fmt, s_out, a_c, b_c)
    if any(s < 0 for s in signs):
        attrs["channel_signs"] = [int(s) for s in signs]
    walker.emit("MinifloatThreshold", [st.acc, t_name], [vals], domain=DOMAIN, **attrs)
    walker.model.set_tensor_datatype(vals, fmt.datatype)
    walker.model.set_tensor_shape(vals, list(st.acc_shape))
    final = walker.apply_layout(vals, st.layout)
    walker.state[out] = Vals(final, fmt, fractions(np.float64(1.0)))


HANDLERS = {"QuantizeToFormat": quantize_to_format}
