"""FoldScalesIntoThresholds: rewrite a legalized graph (passes/legalize.py) into exact integer arithmetic between
quantizers, every quantizer a threshold comparison in its accumulator's integer domain.

How: one walk over the nodes in topological order (``passes.lowering.walker``) that tracks, for every tensor of the
legalized graph, what the lowered graph holds for it (``passes.lowering.state``): format values with an exact
scale, an exact integer accumulator with exact rational parameters ``a``, ``b``, or a plain float tensor.

Linear ops update ``a``, ``b`` symbolically (Mul/Div/Add/Sub by constants, BatchNormalization, Gemm's alpha/beta and
bias, Conv bias); MatMul / Gemm / Conv on values become ``ExactMatMul`` (Conv via Transpose + qonnx ``Im2Col``, the
layout of qonnx' ``LowerConvsToMatMul``), adds of two quantized tensors ``ExactAdd`` with integer alignment
coefficients, average pools ``ExactSumPool``; ReLU is absorbed into the next thresholds; data movement on values
(Transpose, Reshape, MaxPool, Pad with zeros, ...) stays as it is. A quantizer on an accumulator becomes
``MinifloatThreshold`` with thresholds from passes/thresholds.py. Whatever cannot be expressed exactly becomes a
float island: its inputs are dequantized (``Dequantize``), the node runs as in QONNX, the next quantizer is a
``QuantizeToFormat`` again. One handler per op type does each rewrite (``passes.lowering.handlers``).

Why not FINN's streamlining (MoveScalarMulPastMatMul, AbsorbAddIntoMultiThreshold, ...): those rewrite fp32
initializers and round thresholds in fp32; minifloat accumulators exceed fp32's 24-bit integers and the
round-half-to-even ties of the output format need exact comparisons, so the scale algebra here is done on exact
rationals. FINN/qonnx transformations are reused around it (InferShapes, InferDataTypes, Im2Col, cleanup).
"""

from qonnx.transformation.base import Transformation

from passes.lowering.walker import Walker


class FoldScalesIntoThresholds(Transformation):
    """Lower a legalized graph to exact integer arithmetic + thresholds (module docstring)."""

    def apply(self, model):
        Walker(model).run()
        # one walk lowers the whole graph; (model, False) stops qonnx' apply-until-unchanged loop
        return model, False
