"""Brevitas model zoo: quantizer factory (``quantizers``), ``QuantSpec`` and the MLP / CNN / ViT builders
(``models``). See ``compiler/zoo/models.py`` for the quantization layout of the models."""

from compiler.zoo.models import (
    QuantCNN,
    QuantMLP,
    QuantSpec,
    QuantSpecError,
    QuantViT,
    UnknownModelError,
    build_cnn,
    build_mlp,
    build_model,
    build_vit,
    load_float_state_dict,
    load_timm_vit_state_dict,
    model_names,
)
from compiler.zoo.quantizers import act_quant, format_of_quantizer, weight_quant

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
    "format_of_quantizer",
    "load_float_state_dict",
    "load_timm_vit_state_dict",
    "model_names",
    "weight_quant",
]
