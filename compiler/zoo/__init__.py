"""Brevitas model zoo: the quantizer factory (``quantizers``), the quantization spec (``spec``), one module per
architecture (``mlp``, ``cnn``, ``vit``), the name registry (``registry``) and float checkpoint loading
(``checkpoints``). ``compiler/zoo/spec.py`` describes the quantization layout of the models."""

from compiler.zoo.checkpoints import load_float_state_dict, load_timm_vit_state_dict
from compiler.zoo.cnn import QuantCNN, build_cnn
from compiler.zoo.mlp import QuantMLP, build_mlp
from compiler.zoo.quantizers import act_quant, format_of_quantizer, weight_quant
from compiler.zoo.registry import UnknownModelError, build_model, model_names
from compiler.zoo.spec import QuantSpec, QuantSpecError, eight_bit_format
from compiler.zoo.vit import QuantViT, build_vit

__all__ = [
    "QuantCNN",
    "QuantMLP",
    "QuantSpec",
    "QuantSpecError",
    "QuantViT",
    "UnknownModelError",
    "act_quant",
    "build_cnn",
    "build_mlp",
    "build_model",
    "build_vit",
    "eight_bit_format",
    "format_of_quantizer",
    "load_float_state_dict",
    "load_timm_vit_state_dict",
    "model_names",
    "weight_quant",
]
