"""Lowering handlers of matrix products, averaging and data movement (passes/lowering/matrix.py, pooling.py,
movement.py) and the walk's dispatch (walker.py), one small graph each: equal to QONNX bit for bit (dyadic
parameters, tests/lowering_cases.py), the expected structure and exact requantizer, and a refusal naming the node."""

from fractions import Fraction

import numpy as np
import pytest
from lowering_cases import (
    A_MM,
    E3M2,
    LSB,
    W_SCALE,
    Graph,
    assert_refused,
    check_requantizer,
    legalized,
    lower_and_check_golden,
    matmul_graph,
    ops,
    the,
)
from qonnx.custom_op.registry import getCustomOp

from passes.lowering.handler import Refused
from passes.lowering.handlers import HANDLERS
from passes.lowering.walker import Walker

A_X = Fraction(1, 2) * LSB  # integer step of a 0.5-scaled E3M2 input


# --- MatMul / Gemm / Conv -----------------------------------------------------------------------------------------

def test_matmul_of_two_activations_is_a_dynamic_exact_matmul():
    g = Graph(x=[1, 2, 8], x2=[1, 8, 3])
    g.quant(g.node("MatMul", [g.quant("x", "xq", 0.5), g.quant("x2", "x2q", 0.25)], "mm"), "y", 1.0)
    low = lower_and_check_golden(g.model("y", [1, 2, 3]))
    mm = the(low, "ExactMatMul")
    assert all(low.get_initializer(t) is None for t in mm.input)
    check_requantizer(low, [A_X * Fraction(1, 4) * LSB], [0], 1.0, E3M2)


def test_matmul_refuses_a_weight_scale_along_the_reduction_axis():
    g = Graph(x=[1, 8])
    g.quant("x", "xq", 0.5)
    g.weight("w", (8, 4), np.full((8, 1), 0.25) * (1 + np.arange(8)[:, None] % 2))
    g.quant(g.node("MatMul", ["xq", "w"], "mm"), "y", 0.5)
    assert_refused(g.model("y", [1, 4]), "mm", "the scale of weight w varies along the reduction axis")


def gemm_graph(dynamic_bias=False, **attrs):
    g = Graph(x=[1, 8], **({"b": [4]} if dynamic_bias else {}))
    g.quant("x", "xq", 0.5)
    g.weight("w", (4, 8), np.asarray(W_SCALE)[:, None])  # transB: one scale per output row of W
    if not dynamic_bias:
        g.const("b", [0.375, -1.25, 0.0, 2.5])
    g.quant(g.node("Gemm", ["xq", "w", "b"], "gemm", transB=1, **attrs), "y", 0.5)
    return g.model("y", [1, 4])


def test_gemm_with_transposed_weight_alpha_and_beta():
    model = gemm_graph(alpha=0.5, beta=2.0)
    low = lower_and_check_golden(model)
    mm = the(low, "ExactMatMul")
    w_values = E3M2.quantize(model.get_initializer("w_f") / model.get_initializer("q_w_s"))
    assert np.array_equal(low.get_initializer(mm.input[1]), w_values.T)
    assert low.get_tensor_datatype(mm.input[1]).name == E3M2.qonnx_name
    check_requantizer(low, [a / 2 for a in A_MM], [0.75, -2.5, 0.0, 5.0], 0.5, E3M2)


def test_gemm_refuses_a_dynamic_bias():
    assert_refused(gemm_graph(dynamic_bias=True), "gemm", "bias b is not a constant")


def test_gemm_refuses_transa():
    g = Graph(x=[8, 1])
    g.quant("x", "xq", 0.5)
    g.weight("w", (8, 4), 0.25)
    g.quant(g.node("Gemm", ["xq", "w"], "gemm", transA=1), "y", 0.5)
    assert_refused(g.model("y", [1, 4]), "gemm", "transA=1 is not supported")


def conv_graph(kernel=3, pads=(1, 1, 1, 1), dynamic_bias=False, group=1):
    g = Graph(x=[1, 2, 5, 5], **({"b": [4]} if dynamic_bias else {}))
    g.quant("x", "xq", 0.5)
    g.weight("w", (4, 2 // group, kernel, kernel), np.asarray(W_SCALE)[:, None, None, None])
    if not dynamic_bias:
        g.const("b", [0.375, -1.25, 0.0, 2.5])
    size = 5 + pads[0] + pads[2] - kernel + 1
    g.quant(g.node("Conv", ["xq", "w", "b"], "conv", kernel_shape=[kernel, kernel], pads=list(pads), group=group),
            "y", 0.5)
    return g.model("y", [1, 4, size, size])


@pytest.mark.parametrize("kernel, pads, im2col", [(3, (1, 1, 1, 1), True), (1, (0, 0, 0, 0), False)])
def test_conv_is_im2col_and_exact_matmul_in_nhwc(kernel, pads, im2col):
    low = lower_and_check_golden(conv_graph(kernel, pads), runs=3)
    assert ops(low) == (["QuantizeToFormat", "Transpose"] + ["Im2Col"] * im2col +
                        ["ExactMatMul", "MinifloatThreshold", "Transpose", "Dequantize"])
    node = check_requantizer(low, A_MM, [0.375, -1.25, 0.0, 2.5], 0.5, E3M2)
    assert getCustomOp(node).get_nodeattr("channel_axis") == -1  # the NHWC channel axis of the accumulator


@pytest.mark.parametrize("kwargs, message", [
    (dict(group=2), r"group=2 with weight shape .*: only group=1 or depthwise"),
    (dict(dynamic_bias=True), "bias b is not a constant"),  # refused before the Transpose / Im2Col are emitted
])
def test_conv_refuses_groups_and_a_dynamic_bias(kwargs, message):
    assert_refused(conv_graph(**kwargs), "conv", message)


# --- GlobalAveragePool / ReduceMean / AveragePool -----------------------------------------------------------------

def pool_graph(op, out_shape, **attrs):
    g = Graph(x=[1, 3, 4, 4])
    g.quant(g.node(op, [g.quant("x", "xq", 0.5)], "pool", **attrs), "y", 0.125)
    return g.model("y", out_shape)


def test_global_average_pool_is_an_exact_sum_scaled_by_the_window():
    low = lower_and_check_golden(pool_graph("GlobalAveragePool", [1, 3, 1, 1]))
    pool = the(low, "ExactSumPool")
    assert list(low.get_initializer(pool.input[1])) == [2, 3]
    check_requantizer(low, [A_X / 16], [0], 0.125, E3M2)


def test_global_average_pool_refuses_an_accumulator():
    g = Graph(x=[1, 3, 4, 4])
    avg = g.node("AveragePool", [g.quant("x", "xq", 0.5)], "avg", kernel_shape=[2, 2], strides=[2, 2])
    g.quant(g.node("GlobalAveragePool", [avg], "gap"), "y", 0.125)
    assert_refused(g.model("y", [1, 3, 1, 1]), "gap", "input avg is not a per-tensor scaled quantized tensor")


def test_reduce_mean_without_keepdims_reshapes_the_requantized_values():
    low = lower_and_check_golden(pool_graph("ReduceMean", [1, 3], axes=[2, 3], keepdims=0))
    assert ops(low) == ["QuantizeToFormat", "ExactSumPool", "MinifloatThreshold", "Reshape", "Dequantize"]
    check_requantizer(low, [A_X / 16], [0], 0.125, E3M2)


def test_reduce_mean_refuses_the_batch_axis():
    assert_refused(pool_graph("ReduceMean", [1, 1, 1, 1], axes=[0, 1, 2, 3]), "pool", "reduces over the batch axis")


def test_average_pool_sums_non_overlapping_windows():
    low = lower_and_check_golden(pool_graph("AveragePool", [1, 3, 2, 2], kernel_shape=[2, 2], strides=[2, 2]))
    assert getCustomOp(the(low, "ExactSumPool")).get_nodeattr("kernel") == [2, 2]
    check_requantizer(low, [A_X / 4], [0], 0.125, E3M2)


def test_average_pool_refuses_overlapping_windows():
    model = pool_graph("AveragePool", [1, 3, 3, 3], kernel_shape=[2, 2], strides=[1, 1])
    assert_refused(model, "pool", "overlapping or padded windows")


# --- data movement ------------------------------------------------------------------------------------------------

def test_transpose_of_a_per_channel_accumulator_is_applied_after_the_threshold():
    g = Graph(x=[1, 2, 3, 8])
    g.quant("x", "xq", 0.5)
    g.weight("w", (8, 4), np.asarray([W_SCALE]))
    mm = g.node("MatMul", ["xq", "w"], "mm")
    g.quant(g.node("Transpose", [mm], "t", perm=[0, 3, 1, 2]), "y", 0.5)  # not its own inverse
    low = lower_and_check_golden(g.model("y", [1, 4, 2, 3]))
    assert ops(low) == ["QuantizeToFormat", "ExactMatMul", "MinifloatThreshold", "Transpose", "Dequantize"]
    node = check_requantizer(low, A_MM, [0], 0.5, E3M2)
    assert getCustomOp(node).get_nodeattr("channel_axis") == -1


def test_flatten_of_values_moves_the_values():
    g = Graph(x=[1, 2, 2, 4])
    g.quant(g.node("Flatten", [g.quant("x", "xq", 0.5)], "flat"), "y", 0.25)
    low = lower_and_check_golden(g.model("y", [1, 16]))
    flat = the(low, "Flatten")
    assert low.get_tensor_datatype(flat.input[0]).name == E3M2.qonnx_name
    assert ops(low).index("Flatten") < ops(low).index("MinifloatThreshold")


def test_layout_op_refuses_a_float_input():
    g = Graph(x=[1, 8])
    g.quant(g.node("Flatten", ["x"], "flat"), "y", 0.25)
    assert_refused(g.model("y", [1, 8]), "flat", "input x is not per-tensor scaled activation values")


@pytest.mark.parametrize("op, attrs, consts, out_shape", [
    ("MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2]), {}, [1, 3, 2, 2]),
    ("Slice", {}, {"starts": [1], "ends": [3], "axes": [2]}, [1, 3, 2, 4]),
    ("Pad", {}, {"pads": [0, 0, 1, 1, 0, 0, 1, 1]}, [1, 3, 6, 6]),
])
def test_selection_and_zero_padding_move_the_values(op, attrs, consts, out_shape):
    g = Graph(x=[1, 3, 4, 4])
    for name, value in consts.items():
        g.const(name, value, np.int64)
    g.quant(g.node(op, [g.quant("x", "xq", 0.5), *consts], "move", **attrs), "y", 0.25)
    low = lower_and_check_golden(g.model("y", out_shape))
    assert low.get_tensor_datatype(the(low, op).output[0]).name == E3M2.qonnx_name


def test_maxpool_refuses_an_accumulator():
    g = Graph(x=[1, 3, 4, 4])
    avg = g.node("AveragePool", [g.quant("x", "xq", 0.5)], "avg", kernel_shape=[2, 2], strides=[2, 2])
    g.quant(g.node("MaxPool", [avg], "maxpool", kernel_shape=[2, 2], strides=[2, 2]), "y", 0.125)
    assert_refused(g.model("y", [1, 3, 1, 1]), "maxpool", "input avg is an accumulator")


def test_pad_refuses_a_nonzero_constant():
    g = Graph(x=[1, 3, 4, 4])
    g.const("pads", [0, 0, 1, 1, 0, 0, 1, 1], np.int64)
    g.const("one", 1.0)
    g.quant(g.node("Pad", [g.quant("x", "xq", 0.5), "pads", "one"], "pad"), "y", 0.25)
    assert_refused(g.model("y", [1, 3, 6, 6]), "pad", "pads with a nonzero constant")


# --- the walk -----------------------------------------------------------------------------------------------------

def test_nodes_without_handler_are_float_islands_with_a_reason():
    g = Graph(x=[1, 8])
    g.quant(g.node("Softmax", [g.quant("x", "xq", 0.5)], "softmax", axis=1), "y", 0.125)
    walker = Walker(legalized(g.model("y", [1, 8])))
    walker.run()
    assert walker.islands == [("softmax", "Softmax softmax: no exact lowering of Softmax")]
    assert [n.op_type for n in walker.nodes] == ["QuantizeToFormat", "Dequantize", "Softmax", "QuantizeToFormat",
                                                 "Dequantize"]


def test_the_walk_dispatches_through_its_table():
    g = Graph(x=[1, 8])
    g.quant(matmul_graph(g), "y", 0.5)
    model = g.model("y", [1, 4])
    seen = []

    def refuse_matmul(walker, node):
        seen.append(node.op_type)
        raise Refused(node, "refused by the test's table")

    table = {"MatMul": refuse_matmul, "QuantizeToFormat": HANDLERS["QuantizeToFormat"]}
    walker = Walker(legalized(model), handlers=table)
    walker.run()
    assert seen == ["MatMul"]
    assert ("mm", "MatMul mm: refused by the test's table") in walker.islands
    assert "ExactMatMul" not in [n.op_type for n in walker.nodes]
