"""Lowering handlers of quantizers and elementwise linear ops (passes/lowering/quantize.py, linear.py), one small
graph each: equal to QONNX bit for bit (dyadic parameters, tests/lowering_cases.py), the expected structure and
exact requantizer, and a refusal naming the node (the node then stays a float island)."""

from fractions import Fraction

import numpy as np
import pytest
from lowering_cases import (
    A_MM,
    E2M1,
    E3M2,
    LSB,
    Graph,
    assert_refused,
    check_requantizer,
    lower_and_check_golden,
    matmul_graph,
    ops,
    the,
    walker_at,
)
from qonnx.custom_op.registry import getCustomOp

from compiler.errors import UnsupportedNodeError
from passes import lower_qonnx
from passes.compare import lowered_quantizers
from passes.lowering.handler import Refused
from passes.lowering.handlers import HANDLERS

# --- QuantizeToFormat ---------------------------------------------------------------------------------------------

def test_quantizer_on_values_is_a_threshold_on_their_integers():
    g = Graph(x=[1, 16])
    g.quant(g.quant("x", "xq", 0.5), "y", 0.25, E2M1)
    low = lower_and_check_golden(g.model("y", [1, 16]))
    assert ops(low) == ["QuantizeToFormat", "ExactAdd", "MinifloatThreshold", "Dequantize"]
    assert getCustomOp(the(low, "ExactAdd")).get_nodeattr("coeffs") == [1]
    node = check_requantizer(low, [Fraction(1, 2) * LSB], [0], 0.25, E2M1)
    assert getCustomOp(node).get_nodeattr("channel_axis") == -1


def test_quantizer_with_a_per_channel_scale_quantizes_the_float_value():
    g = Graph(x=[1, 4])
    g.quant(g.quant("x", "xq", 0.5), "y", [[0.25, 0.5, 1.0, 0.125]])
    low = lower_and_check_golden(g.model("y", [1, 4]))
    assert ops(low) == ["QuantizeToFormat", "Dequantize", "QuantizeToFormat", "Dequantize"]


def test_quantizer_refuses_parameters_varying_along_two_axes():
    g = Graph(x=[1, 3, 4])
    g.const("c", np.arange(12).reshape(3, 4) - 5.0)
    g.quant(g.node("Mul", [g.quant("x", "xq", 0.5), "c"], "scaled"), "y", 0.5)
    with pytest.raises(UnsupportedNodeError, match=r"QuantizeToFormat q_y_quantize: .* varies along axes \[1, 2\]"):
        lower_qonnx(g.model("y", [1, 3, 4]))


# --- Mul ----------------------------------------------------------------------------------------------------------

def test_mul_by_a_constant_scales_the_accumulator_per_channel():
    g = Graph(x=[1, 8])
    c = [1.5, -2.0, 0.25, 1.0]
    g.const("c", [c])
    g.quant(g.node("Mul", [matmul_graph(g), "c"], "scaled"), "y", 0.5)
    low = lower_and_check_golden(g.model("y", [1, 4]))
    assert ops(low) == ["QuantizeToFormat", "ExactMatMul", "MinifloatThreshold", "Dequantize"]
    node = check_requantizer(low, [a * Fraction(k) for a, k in zip(A_MM, c)], [0], 0.5, E3M2)
    assert list(getCustomOp(node).get_nodeattr("channel_signs")) == [1, -1, 1, 1]


def test_scale_mul_of_an_activation_quantizer_is_recorded_for_compare():
    g = Graph(x=[1, 8])
    g.quant(matmul_graph(g), "y", 0.5)
    low = lower_qonnx(g.model("y", [1, 4]))
    qmap = lowered_quantizers(low)
    assert sorted(qmap) == ["xq", "y"]  # the weight quantizer is a constant, not an activation
    assert qmap["xq"] == {"values": the(low, "QuantizeToFormat").output[0], "format": E3M2.qonnx_name, "scale": 0.5}
    assert qmap["y"]["values"] == the(low, "MinifloatThreshold").output[0]


def test_mul_refuses_a_product_of_two_activations():
    g = Graph(x=[1, 8])
    xq = g.quant("x", "xq", 0.5)
    g.quant(g.node("Mul", [xq, xq], "prod"), "y", 0.5)
    assert_refused(g.model("y", [1, 8]), "prod", "needs one dynamic input and one float constant")


def test_mul_refuses_to_move_before_a_relu():
    g = Graph(x=[1, 8])
    g.const("two", 2.0)
    g.quant(g.node("Mul", [g.node("Relu", [matmul_graph(g)], "relu"), "two"], "scaled"), "y", 0.5)
    assert_refused(g.model("y", [1, 4]), "scaled", "input relu is a ReLU output")


# --- Div ----------------------------------------------------------------------------------------------------------

def test_div_by_a_constant_divides_the_parameters():
    g = Graph(x=[1, 8])
    c = [4.0, 0.5, -2.0, 8.0]
    g.const("c", [c])
    g.quant(g.node("Div", [matmul_graph(g), "c"], "div"), "y", 0.25)
    low = lower_and_check_golden(g.model("y", [1, 4]))
    assert "Div" not in ops(low)
    check_requantizer(low, [a / Fraction(k) for a, k in zip(A_MM, c)], [0], 0.25, E3M2)


def test_div_refuses_a_zero_divisor():
    g = Graph(x=[1, 8])
    g.const("c", [[4.0, 0.0, 1.0, 1.0]])
    g.quant(g.node("Div", [matmul_graph(g), "c"], "div"), "y", 0.25)
    walker, node = walker_at(g.model("y", [1, 4]), "div")
    with pytest.raises(Refused, match="^Div div: divisor c has zero entries"):
        HANDLERS["Div"](walker, node)


# --- Add / Sub ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op, coeffs", [("Add", [4, 1]), ("Sub", [4, -1])])
def test_add_sub_of_two_quantized_tensors_is_an_aligned_exact_add(op, coeffs):
    g = Graph(x=[1, 16], x2=[1, 16])
    g.quant(g.node(op, [g.quant("x", "xq", 0.5), g.quant("x2", "x2q", 0.125)], "s"), "y", 0.25)
    low = lower_and_check_golden(g.model("y", [1, 16]))
    assert getCustomOp(the(low, "ExactAdd")).get_nodeattr("coeffs") == coeffs  # steps 2^-5 and 2^-7: g = 2^-7
    check_requantizer(low, [Fraction(1, 128)], [0], 0.25, E3M2)


def test_add_of_a_constant_on_the_left_shifts_the_bias():
    g = Graph(x=[1, 8])
    b = [0.375, -1.25, 0.0, 2.5]
    g.const("b", [b])
    g.quant(g.node("Add", ["b", matmul_graph(g)], "biased"), "y", 0.5)
    low = lower_and_check_golden(g.model("y", [1, 4]))
    check_requantizer(low, A_MM, b, 0.5, E3M2)


def test_sub_from_a_constant_negates_the_accumulator():
    g = Graph(x=[1, 8])
    c = [1.0, -0.5, 0.25, 3.0]
    g.const("c", [c])
    g.quant(g.node("Sub", ["c", matmul_graph(g)], "diff"), "y", 0.5)
    low = lower_and_check_golden(g.model("y", [1, 4]))
    node = check_requantizer(low, [-a for a in A_MM], c, 0.5, E3M2)
    assert list(getCustomOp(node).get_nodeattr("channel_signs")) == [-1, -1, -1, -1]


def test_add_refuses_scales_that_align_only_beyond_62_bits():
    g = Graph(x=[1, 16], x2=[1, 16])
    g.quant(g.node("Add", [g.quant("x", "xq", 1.0), g.quant("x2", "x2q", 2.0**-70)], "s"), "y", 0.25)
    assert_refused(g.model("y", [1, 16]), "s", "the integer steps .* align only with coefficients")


def test_sub_refuses_a_float_input():
    g = Graph(x=[1, 8])
    g.const("c", 1.0)
    g.quant(g.node("Sub", ["x", "c"], "diff"), "y", 0.5)
    assert_refused(g.model("y", [1, 8]), "diff", "input x is a float tensor")


# --- Relu ---------------------------------------------------------------------------------------------------------

def test_relu_on_a_negated_accumulator_is_absorbed_into_signed_thresholds():
    g = Graph(x=[1, 8])
    g.const("neg", -1.0)
    g.quant(g.node("Relu", [g.node("Mul", [matmul_graph(g), "neg"], "negated")], "relu"), "y", 0.5)
    low = lower_and_check_golden(g.model("y", [1, 4]))
    assert "Relu" not in ops(low)
    node = check_requantizer(low, [-a for a in A_MM], [0], 0.5, E3M2, relu=True)
    assert list(getCustomOp(node).get_nodeattr("channel_signs")) == [-1, -1, -1, -1]


def test_relu_on_values_stays_a_relu_on_the_values():
    g = Graph(x=[1, 16])
    g.quant(g.node("Relu", [g.quant("x", "xq", 0.5)], "relu"), "y", 0.25)
    low = lower_and_check_golden(g.model("y", [1, 16]))
    relu = the(low, "Relu")
    assert low.get_tensor_datatype(relu.input[0]).name == E3M2.qonnx_name
    assert low.get_tensor_datatype(relu.output[0]).name == E3M2.qonnx_name


def test_relu_refuses_a_float_input():
    g = Graph(x=[1, 8])
    g.quant(g.node("Relu", ["x"], "relu"), "y", 0.5)
    assert_refused(g.model("y", [1, 8]), "relu", "input x is neither an accumulator nor positively scaled")


# --- BatchNormalization -------------------------------------------------------------------------------------------

BN = {"gamma": [1.5, -0.5, 2.0, 0.25], "beta": [0.25, -1.0, 0.5, 0.0], "mean": [0.5, 0.0, -0.25, 1.0],
      "var": [0.25, 1.0, 4.0, 0.0625]}


def test_batchnorm_folds_into_exact_per_channel_parameters():
    g = Graph(x=[1, 8])
    for name, value in BN.items():
        g.const(name, value)
    g.quant(g.node("BatchNormalization", [matmul_graph(g), *BN], "bn", epsilon=0.0), "y", 0.5)
    low = lower_and_check_golden(g.model("y", [1, 4]))
    m = [Fraction(gm) / Fraction(float(np.sqrt(v))) for gm, v in zip(BN["gamma"], BN["var"])]  # exact square roots
    shift = [Fraction(bt) - Fraction(mu) * k for bt, mu, k in zip(BN["beta"], BN["mean"], m)]
    node = check_requantizer(low, [a * k for a, k in zip(A_MM, m)], shift, 0.5, E3M2)
    assert list(getCustomOp(node).get_nodeattr("channel_signs")) == [1, -1, 1, 1]


def test_batchnorm_refuses_dynamic_statistics():
    g = Graph(x=[1, 8], mean=[4])
    for name in ("gamma", "beta", "var"):
        g.const(name, BN[name])
    g.quant(g.node("BatchNormalization", [matmul_graph(g), *BN], "bn", epsilon=0.0), "y", 0.5)
    assert_refused(g.model("y", [1, 4]), "bn", "scale, bias, mean and variance must be constants")
