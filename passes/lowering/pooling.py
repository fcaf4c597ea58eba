"""Handlers of the averaging ops: ``GlobalAveragePool``, ``ReduceMean``, ``AveragePool``.

An average of per-tensor scaled values is an exact integer sum ``ExactSumPool`` (over axes, or over
non-overlapping 2D windows) with ``a = s 2^lsb / N``: the division by the window size ``N`` is a scale, folded into
the next thresholds. ``ReduceMean`` without ``keepdims`` keeps the reduced axes on the accumulator and leaves a
pending Reshape; reducing the batch axis, overlapping or padded windows are refused.
"""

import numpy as np
from onnx import helper
from qonnx.util.basic import get_by_name

from custom_ops.general import DOMAIN
from passes.lowering.handler import Refused, node_attrs
from passes.lowering.state import Aff, Vals, fractions, is_scalar


def _pooled_input(walker, node):
    st = walker.get(node.input[0])
    if not (isinstance(st, Vals) and is_scalar(st.scale)):
        raise Refused(node, f"input {node.input[0]} is not a per-tensor scaled quantized tensor")
    return st


def _sum_pool(walker, node, st, window, axes=None, kernel=None):
    """Emit the ExactSumPool; (accumulator name, its ``a``)."""
    acc = walker.name(node.output[0] + "_acc")
    if kernel:
        walker.emit("ExactSumPool", [st.name], [acc], domain=DOMAIN, format=st.fmt.qonnx_name, kernel=kernel)
    else:
        axes_name = walker.const("pool_axes", np.array(axes, dtype=np.int64))
        walker.emit("ExactSumPool", [st.name, axes_name], [acc], domain=DOMAIN, format=st.fmt.qonnx_name)
    a = st.unit() / window
    return acc, fractions(np.float64(0.0)) + a


def global_average_pool(walker, node):
    st = _pooled_input(walker, node)
    shape = walker.shape(node.input[0])
    acc, a = _sum_pool(walker, node, st, int(np.prod(shape[2:])), axes=list(range(2, len(shape))))
    walker.state[node.output[0]] = Aff(acc, walker.shape(node.output[0]), a, fractions(np.float64(0.0)))


def reduce_mean(walker, node):
    st = _pooled_input(walker, node)
    shape = walker.shape(node.input[0])
    axes = get_by_name(node.attribute, "axes")
    axes = list(axes.ints) if axes is not None else (
        [int(v) for v in np.asarray(walker.init(node.input[1])).ravel()] if len(node.input) > 1 and node.input[1]
        else list(range(len(shape))))
    axes = sorted(a % len(shape) for a in axes)
    if 0 in axes:
        raise Refused(node, "reduces over the batch axis")
    keep = get_by_name(node.attribute, "keepdims")
    keep = 1 if keep is None else keep.i
    acc, a = _sum_pool(walker, node, st, int(np.prod([shape[i] for i in axes])), axes=axes)
    kept = [1 if i in axes else d for i, d in enumerate(shape)]
    layout = []
    if not keep:
        post = walker.shape(node.output[0])
        squeeze = helper.make_node("Reshape", ["_", walker.const("squeeze_shape", np.array([0] + post[1:]))],
                                   ["_"], name="reduce_squeeze")
        layout.append((squeeze, kept, post))
    walker.state[node.output[0]] = Aff(acc, kept, a, fractions(np.float64(0.0)), False, layout)


def average_pool(walker, node):
    st = _pooled_input(walker, node)
    attrs = node_attrs(node)
    kernel = list(attrs.get("kernel_shape", []))
    if len(kernel) != 2:
        raise Refused(node, f"kernel_shape {kernel}; only 2D pooling is supported")
    if list(attrs.get("strides", kernel)) != kernel or any(attrs.get("pads", [0])):
        raise Refused(node, "overlapping or padded windows; supported: strides equal to the kernel, no pads")
    shape = walker.shape(node.input[0])
    if shape[2] % kernel[0] or shape[3] % kernel[1]:
        raise Refused(node, f"the {shape[2]}x{shape[3]} input is not a whole number of {kernel[0]}x{kernel[1]} "
                            "windows")
    acc, a = _sum_pool(walker, node, st, kernel[0] * kernel[1], kernel=kernel)
    walker.state[node.output[0]] = Aff(acc, walker.shape(node.output[0]), a, fractions(np.float64(0.0)))


HANDLERS = {"GlobalAveragePool": global_average_pool, "ReduceMean": reduce_mean, "AveragePool": average_pool}
