"""InferExactDatatypes: annotate every tensor of a lowered graph with its exact qonnx DataType.

* values tensors carry their format (``FLOAT<e,m,b>`` / ``INTn`` / ``UINTn``), kept through data movement;
* accumulators (outputs of ``ExactMatMul`` / ``ExactAdd`` / ``ExactSumPool``) carry ``INTn`` with ``n`` the
  smallest width that holds their exact range: for constant weights computed from the actual weight columns
  (FINN's data-aware accumulator minimization), else from the formats and the dot-product length (the Kulisch
  bound of ``compiler.numerics.accumulator_bits``);
* thresholds of every ``MinifloatThreshold`` are clipped to its accumulator's range ``[lo, hi + 1]`` (for
  ``sign = -1`` channels ``[-hi, -lo + 1]``), which leaves the output unchanged for every accumulator in range and
  lets the hardware store thresholds in the accumulator's width.

The annotation itself is qonnx' ``InferDataTypes`` (our ops implement ``infer_node_datatype``); an ``Add`` of two
values tensors of one format (the lowering's constant filling a zero-padded slot, which has a zero term in every
element: passes/lowering/linear.py) keeps that format, where qonnx would say FLOAT32.
"""

import numpy as np
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes

from custom_ops.general.common import threshold_initializer, threshold_ints

EXACT_OPS = ("ExactMatMul", "ExactAdd", "ExactSumPool")


def accumulator_range(model, tensor, producer=None):
    """(lo, hi) of an accumulator tensor produced by an exact op, or None. ``producer``: the node that makes
    ``tensor`` when it is not in the graph yet (the lowering's walk); default: the graph's producer."""
    producer = producer or model.find_producer(tensor)
    if producer is None or producer.op_type not in EXACT_OPS:
        return None
    return getCustomOp(producer).acc_range(model)


class ClipThresholdsToAccumulator(Transformation):
    """Clip MinifloatThreshold thresholds to the range of the accumulator they compare against."""

    def apply(self, model):
        modified = False
        for node in model.graph.node:
            if node.op_type != "MinifloatThreshold":
                continue
            rng = accumulator_range(model, node.input[0])
            if rng is None:
                continue
            lo, hi = rng
            t = threshold_ints(model.get_initializer(node.input[1]))
            signs = list(getCustomOp(node).get_nodeattr("channel_signs")) or [1]
            if len(signs) == 1:
                signs = signs * t.shape[0]
            clipped = t.copy()
            for c in range(t.shape[0]):
                low, high = (lo, hi + 1) if signs[c] > 0 else (-hi, -lo + 1)
                clipped[c] = [min(max(v, low), high) for v in t[c]]
            if not np.array_equal(clipped, t):
                model.set_initializer(node.input[1], threshold_initializer(clipped))
                modified = True
        return model, modified


class InferExactDatatypes(Transformation):
    """qonnx InferDataTypes + threshold clipping (module docstring)."""

    def apply(self, model):
        model = model.transform(InferDataTypes())
        for node in model.graph.node:
            if node.op_type == "Add" and len(node.input) == 2:
                dts = [model.get_tensor_datatype(t) for t in node.input]
                if dts[0] == dts[1] and (dts[0].name.startswith("FLOAT<") or dts[0].is_integer()):
                    model.set_tensor_datatype(node.output[0], dts[0])
        model = model.transform(ClipThresholdsToAccumulator())
        return model, False
