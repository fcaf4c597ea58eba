"""Graph-level custom ops of minifinn's lowered graph (ONNX domain ``custom_ops.general``).

qonnx's registry imports the module named by a node's domain and looks the op up in ``custom_op``, so a lowered
model executes with ``qonnx.core.onnx_exec.execute_onnx`` once ``custom_ops`` is importable. The arithmetic
contract of every op is in its docstring and in docs/lowered_graph.md.
"""

from custom_ops.general.batched_im2col import BatchedIm2Col
from custom_ops.general.exact_ops import ExactAdd, ExactMatMul, ExactSumPool
from custom_ops.general.quantize import Dequantize, QuantizeToFormat
from custom_ops.general.threshold import MinifloatThreshold

DOMAIN = "custom_ops.general"

custom_op = {
    "QuantizeToFormat": QuantizeToFormat,
    "Dequantize": Dequantize,
    "ExactMatMul": ExactMatMul,
    "ExactAdd": ExactAdd,
    "ExactSumPool": ExactSumPool,
    "MinifloatThreshold": MinifloatThreshold,
    "BatchedIm2Col": BatchedIm2Col,
}

__all__ = list(custom_op) + ["DOMAIN", "custom_op"]
