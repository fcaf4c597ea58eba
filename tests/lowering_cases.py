"""Hand-built QONNX graphs for the lowering handler tests (tests/test_lowering_*.py) and the checks they share.

Every scale and parameter is a dyadic rational with few bits, so QONNX' fp32 execution of the original graph is
exact and the lowered graph must equal it bit for bit (no tie noise to tolerate).
"""

from fractions import Fraction

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.general import SortGraph
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model

from compiler.numerics import MinifloatFormat
from custom_ops.general.common import threshold_ints
from custom_ops.general.threshold import apply_thresholds
from passes import lower_qonnx
from passes.compare import execute_lowered
from passes.legalize import LegalizeFloatQuant
from passes.lower import check_shapes
from passes.lowering.handler import Refused
from passes.lowering.handlers import HANDLERS
from passes.lowering.walker import Walker

E3M2 = MinifloatFormat(3, 2)
E2M1 = MinifloatFormat(2, 1)
QDOM = "qonnx.custom_op.general"
LSB = Fraction(1, 16)  # E3M2: value = int * 2^-4
W_SCALE = [0.125, 0.25, 0.125, 0.5]
A_MM = [Fraction(1, 2) * LSB * Fraction(s) * LSB for s in W_SCALE]  # a of matmul_graph's "mm" per column


class Graph:
    """A QONNX graph built node by node; every node is named after its output."""

    def __init__(self, **inputs):
        self.inputs = inputs  # name -> shape
        self.nodes, self.inits = [], {}

    def const(self, name, value, dtype=np.float32):
        self.inits[name] = np.asarray(value, dtype=dtype)
        return name

    def node(self, op_type, inputs, out, **attrs):
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def quant(self, inp, out, scale, fmt=E3M2):
        """``FloatQuant(inp, scale)`` of ``fmt`` (the quantizer node is ``q_<out>``)."""
        name = f"q_{out}"
        params = (("s", scale), ("e", fmt.exponent_bits), ("m", fmt.mantissa_bits), ("b", fmt.exponent_bias),
                  ("max", fmt.max))
        for suffix, value in params:
            self.const(f"{name}_{suffix}", value)
        self.nodes.append(helper.make_node(
            "FloatQuant", [inp] + [f"{name}_{suffix}" for suffix, _ in params], [out], domain=QDOM, name=name,
            has_inf=0, has_nan=0, has_subnormal=1, saturation=1, rounding_mode="ROUND"))
        return out

    def weight(self, name, shape, scale, fmt=E3M2, seed=0):
        """A quantized constant weight: random initializer ``<name>_f`` through ``FloatQuant`` to ``name``."""
        rng = np.random.default_rng(seed)
        self.const(f"{name}_f", rng.normal(size=shape) * np.asarray(scale) * 4)
        return self.quant(f"{name}_f", name, scale, fmt)

    def model(self, out, shape):
        graph = helper.make_graph(
            self.nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in self.inputs.items()],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, shape)])
        model = ModelWrapper(qonnx_make_model(graph))
        for name, value in self.inits.items():
            model.set_initializer(name, value)
        return model.transform(InferShapes())


def inputs_for(model, rng):
    return {i.name: (rng.normal(size=model.get_tensor_shape(i.name)) * 2).astype(np.float32)
            for i in model.graph.input}


def lower_and_check_golden(model, runs=6, seed=0):
    """The lowered model, after checking it equals QONNX' ``execute_onnx`` of ``model`` bit for bit."""
    low = lower_qonnx(model)
    out = model.graph.output[0].name
    rng = np.random.default_rng(seed)
    for _ in range(runs):
        feeds = inputs_for(model, rng)
        want = execute_onnx(model, feeds)[out]
        got = execute_lowered(low, feeds)[out]
        assert got.shape == want.shape and np.array_equal(got, want), (got, want)
    return low


def ops(model):
    return [n.op_type for n in model.graph.node]


def the(model, op_type):
    """The one node of ``op_type``."""
    found = [n for n in model.graph.node if n.op_type == op_type]
    assert len(found) == 1, ops(model)
    return found[0]


def check_requantizer(low, a, b, scale, fmt, relu=False):
    """The lowered graph's MinifloatThreshold computes ``fmt.round(relu?(a_c * acc + b_c) / scale)`` exactly for
    every accumulator in range: checked at every threshold and one below it (the count changes nowhere else), for
    each channel ``c``."""
    node = the(low, "MinifloatThreshold")
    lo, hi = getCustomOp(low.find_producer(node.input[0])).acc_range(low)
    t = threshold_ints(low.get_initializer(node.input[1]))
    signs = list(getCustomOp(node).get_nodeattr("channel_signs")) or [1] * t.shape[0]
    a, b = [Fraction(v) for v in np.ravel(a)], [Fraction(v) for v in np.ravel(b)]
    assert t.shape[0] == max(len(a), len(b))
    for c in range(t.shape[0]):
        a_c, b_c = a[c % len(a)], b[c % len(b)]
        edges = {signs[c] * (int(v) + d) for v in t[c] for d in (-1, 0)}
        accs = sorted({v for v in edges if lo <= v <= hi} | {lo, hi})
        got = apply_thresholds(np.array(accs, dtype=object)[:, None], t[c:c + 1], fmt.values(), -1, [signs[c]])
        y = [max(a_c * acc + b_c, 0) if relu else a_c * acc + b_c for acc in accs]
        want = fmt.quantize(np.array([float(v / Fraction(scale)) for v in y], dtype=np.float64))
        assert np.array_equal(got[:, 0], want), c
    return node


def legalized(model):
    """``model`` as ``lower_qonnx`` hands it to the walk."""
    return check_shapes(model.transform(SortGraph())).transform(LegalizeFloatQuant()).transform(InferShapes())


def walker_at(model, node_name):
    """(walker, node): a Walker over the legalized ``model`` that has lowered every node before ``node_name``."""
    walker = Walker(legalized(model))
    legal = walker.model
    for node in legal.graph.node:
        if node.name == node_name:
            return walker, node
        walker.visit(node)
    raise AssertionError(f"no node {node_name}")


def assert_refused(model, node_name, message):
    """The handler of ``node_name`` refuses it with ``message`` (naming the node) before emitting anything, and the
    lowered graph, with that node a float island, still equals QONNX."""
    walker, node = walker_at(model, node_name)
    emitted, counter = len(walker.nodes), walker.counter
    with pytest.raises(Refused, match=f"^{node.op_type} {node_name}: {message}"):
        HANDLERS[node.op_type](walker, node)
    assert (len(walker.nodes), walker.counter) == (emitted, counter)
    low = lower_and_check_golden(model)
    assert node.op_type in ops(low)


def matmul_graph(g, n=4):
    """x (1, 8) -> quantizer (0.5) -> MatMul with a (8, n) weight of per-column scales -> "mm"."""
    g.quant("x", "xq", 0.5)
    g.weight("w", (8, n), np.asarray([W_SCALE[:n]]))
    return g.node("MatMul", ["xq", "w"], "mm")

