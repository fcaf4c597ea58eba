"""MinifloatThreshold: requantize exact integer accumulators to a minifloat / integer format by thresholds.

Contract (bit exact, docs/lowered_graph.md): inputs ``acc`` (exact integers), ``T`` (integer thresholds, shape
``(C or 1, N)``, non-decreasing along N, ``N = len(out_values) - 1``). With ``c`` the index along
``channel_axis`` and ``sign[c]`` from ``channel_signs`` (all +1 when empty):

    out[..., c, ...] = out_values[ #{ i : sign[c] * acc[..., c, ...] >= T[c, i] } ]

where ``out_values`` are the sorted distinct values of ``out_format`` (``compiler.numerics`` ``values()``), so the
count is the output's index in value order. The thresholds encode the scale folding, biases, batch norm, ReLU and
the round-half-to-even tie policy of the target format (passes/thresholds.py computes them exactly).
"""

import numpy as np
import onnx.helper as helper
from qonnx.custom_op.base import CustomOp

from compiler.qonnx_formats import format_from_datatype, qonnx_datatype
from custom_ops.general.common import threshold_ints


def threshold_counts(acc, thresholds, channel_axis=-1, signs=None):
    """``#{i : sign[c] * acc[..., c, ...] >= T[c, i]}`` (the count of the contract above) on numpy arrays: int64,
    or object arrays of Python ints for accumulators or thresholds beyond int64."""
    acc = np.asarray(acc)
    t = np.asarray(thresholds)
    axis = channel_axis % acc.ndim
    moved = np.moveaxis(acc, axis, -1)
    counts = np.empty(moved.shape, dtype=np.int64)
    channels = moved.shape[-1]
    if t.shape[0] not in (1, channels):
        raise ValueError(f"thresholds have {t.shape[0]} rows for {channels} channels")
    for c in range(channels):
        row = t[c if t.shape[0] > 1 else 0]
        x = moved[..., c]
        if signs is not None and len(signs) and signs[c if len(signs) > 1 else 0] < 0:
            x = -x
        if x.dtype == object or row.dtype == object:  # Python ints: numpy compares them exactly in its C loop
            counts[..., c] = np.searchsorted(row.astype(object), x.astype(object), side="right")
        else:
            counts[..., c] = np.searchsorted(row, x, side="right")
    return np.moveaxis(counts, -1, axis)


def apply_thresholds(acc, thresholds, out_values, channel_axis=-1, signs=None):
    """The contract above on numpy arrays (int64 or object accumulators)."""
    return np.asarray(out_values, dtype=np.float32)[threshold_counts(acc, thresholds, channel_axis, signs)]


class MinifloatThreshold(CustomOp):
    """Threshold requantizer (see module docstring)."""

    def get_nodeattr_types(self):
        return {
            "out_format": ("s", True, ""),
            "channel_axis": ("i", False, -1),
            "channel_signs": ("ints", False, []),
            # the exact map behind T, per channel "m;o" (Fractions "p/q"): out = F.round(relu?(m * acc + o)) in F's
            # integer domain (passes.thresholds.requant_affine); empty when the producer did not record it
            "affine": ("strings", False, []),
            "relu": ("i", False, 0, {0, 1}),
        }

    def out_format(self):
        return format_from_datatype(self.get_nodeattr("out_format"), f"MinifloatThreshold {self.onnx_node.name}")

    def make_shape_compatible_op(self, model):
        return helper.make_node("Identity", [self.onnx_node.input[0]], [self.onnx_node.output[0]])

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], qonnx_datatype(self.get_nodeattr("out_format")))

    def execute_node(self, context, graph):
        node = self.onnx_node
        context[node.output[0]] = apply_thresholds(
            context[node.input[0]], threshold_ints(context[node.input[1]]), self.out_format().values(),
            self.get_nodeattr("channel_axis"), self.get_nodeattr("channel_signs"),
        )

    def verify_node(self):
        return [f"MinifloatThreshold {self.onnx_node.name}: out_format {self.get_nodeattr('out_format')}"]
