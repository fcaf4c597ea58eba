"""minifinn graph passes (qonnx ``Transformation`` classes) and ``lower_qonnx``, the whole lowering pipeline."""

from passes.lower import lower_qonnx

__all__ = ["lower_qonnx"]
