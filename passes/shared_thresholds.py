"""``AnnotateSharedThresholds``: mark thresholded hardware nodes whose channels all share one threshold row.

A per-tensor requantizer (residual adds, attention's score/context products, per-tensor thresholding) stores the same
N thresholds for every channel. Synthesis folds such a ROM into constants, so the node's threshold stage costs a
fraction of a per-channel one (``custom_ops/threshold_cost.py``). The estimates cannot see initializers, so this pass
records it in the node attribute ``sharedThresholds`` (1: one distinct row; 0: per-channel rows), FINN's way of
handing graph facts to ``lut_estimation``. The arithmetic does not change.
"""

import numpy as np
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from custom_ops.capabilities import HWOpCapabilities


def rows_are_shared(thresholds):
    """True when every row of a (rows, N) threshold array equals the first."""
    t = np.asarray(thresholds)
    return t.ndim == 2 and bool(np.all(t == t[:1]))


class AnnotateSharedThresholds(Transformation):
    """Set ``sharedThresholds`` on every minifinn hardware node with a threshold initializer (the op's
    ``threshold_input()``, see module docstring). Nodes whose thresholds are not initializers (computed at run time)
    are left alone."""

    def apply(self, model):
        for node in model.graph.node:
            if not node.domain.startswith("finn.custom_op.fpgadataflow"):
                continue
            inst = getCustomOp(node)
            if not isinstance(inst, HWOpCapabilities) or "sharedThresholds" not in inst.get_nodeattr_types():
                continue
            idx = inst.threshold_input()
            t = None if idx is None else model.get_initializer(node.input[idx])
            if t is not None:
                inst.set_nodeattr("sharedThresholds", int(rows_are_shared(t)))
        return model, False
