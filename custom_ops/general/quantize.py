"""Host-side boundary ops of the lowered graph: float -> format values, and values/accumulators -> float.

``QuantizeToFormat(x, scale) -> v``: ``v = q(fp32(x / scale))`` with ``q`` the format's round-half-to-even,
saturating quantizer (``compiler.numerics``). These are exactly the fp32 operations inside qonnx' ``FloatQuant`` /
``Quant`` (which return ``fp32(v * scale)``), so ``Mul(v, scale)`` after this op reproduces the QONNX quantizer
bit for bit. ``v`` holds unscaled format values (e.g. 1.5 for FLOAT<3,2,3>, -8..7 for INT4).

``Dequantize(x, scale[, bias]) -> y``:
* ``input_kind = "values"``: ``y = fp32(x * scale)`` computed in float32 (the QONNX quantizer's output, exactly);
* ``input_kind = "accumulator"``: ``x`` holds exact integers; ``y = fp32(relu?(x * scale + bias))`` computed in
  float64 from the float64 ``scale``/``bias`` initializers (one rounding at the end).
"""

import numpy as np
import onnx.helper as helper
from qonnx.core.datatype import DataType
from qonnx.custom_op.base import CustomOp

from compiler.qonnx_formats import format_from_datatype, qonnx_datatype


class QuantizeToFormat(CustomOp):
    """Float tensor -> unscaled values of ``format`` (see module docstring)."""

    def get_nodeattr_types(self):
        return {"format": ("s", True, "")}

    def fmt(self):
        return format_from_datatype(self.get_nodeattr("format"), f"QuantizeToFormat {self.onnx_node.name}")

    def make_shape_compatible_op(self, model):
        return helper.make_node("Identity", [self.onnx_node.input[0]], [self.onnx_node.output[0]])

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], qonnx_datatype(self.get_nodeattr("format")))

    def execute_node(self, context, graph):
        node = self.onnx_node
        x = np.asarray(context[node.input[0]], dtype=np.float32)
        scale = np.asarray(context[node.input[1]], dtype=np.float32)
        context[node.output[0]] = self.fmt().quantize(x / scale).astype(np.float32)

    def verify_node(self):
        info = []
        try:
            self.fmt()
            info.append(f"QuantizeToFormat {self.onnx_node.name}: format {self.get_nodeattr('format')} ok")
        except ValueError as exc:
            info.append(str(exc))
        return info


class Dequantize(CustomOp):
    """Unscaled values or exact accumulators -> float32 (see module docstring)."""

    def get_nodeattr_types(self):
        return {
            "input_kind": ("s", True, "values", {"values", "accumulator"}),
            "relu": ("i", False, 0, {0, 1}),
        }

    def make_shape_compatible_op(self, model):
        return helper.make_node("Identity", [self.onnx_node.input[0]], [self.onnx_node.output[0]])

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], DataType["FLOAT32"])

    def execute_node(self, context, graph):
        node = self.onnx_node
        x = context[node.input[0]]
        if self.get_nodeattr("input_kind") == "values":
            y = np.asarray(x, dtype=np.float32) * np.asarray(context[node.input[1]], dtype=np.float32)
        else:
            scale = np.asarray(context[node.input[1]], dtype=np.float64)
            bias = np.asarray(context[node.input[2]], dtype=np.float64) if len(node.input) > 2 else 0.0
            y = np.asarray(x).astype(np.float64) * scale + bias
        if self.get_nodeattr("relu"):
            y = np.maximum(y, 0)
        context[node.output[0]] = np.asarray(y, dtype=np.float32)

    def verify_node(self):
        return [f"Dequantize {self.onnx_node.name}: {len(self.onnx_node.input)} inputs"]
