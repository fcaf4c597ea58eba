"""Loading float weights into zoo models: a float-trained zoo state dict (PTQ), and timm / torchvision ViT/DeiT
checkpoints mapped to the zoo ViT's parameter names."""

from torch import nn

from compiler.errors import ConfigError


def load_float_state_dict(model, state_dict):
    """Load a float-trained state dict into a (quantized) zoo model with the same structure.

    Every float parameter must land (no unexpected key, same shapes); only quantizer state (scales, which
    calibration sets) may be missing. Returns the list of missing quantizer keys.
    """
    if isinstance(state_dict, nn.Module):
        state_dict = state_dict.state_dict()
    own = model.state_dict()
    unexpected = [k for k in state_dict if k not in own]
    if unexpected:
        raise ConfigError(
            f"state dict has parameters {unexpected[:8]} that {type(model).__name__} does not have; was it trained "
            "with a different model or config?"
        )
    bad_shapes = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state_dict.items() if v.shape != own[k].shape]
    if bad_shapes:
        raise ConfigError(
            f"state dict shapes differ from {type(model).__name__} (key, given, expected): {bad_shapes[:8]}"
        )
    result = model.load_state_dict(state_dict, strict=False)
    not_quant = [k for k in result.missing_keys if "_quant." not in k]
    if not_quant:
        raise ConfigError(f"state dict lacks non-quantizer parameters {not_quant[:8]} of {type(model).__name__}")
    return list(result.missing_keys)


def _timm_to_zoo_keys(sd):
    """timm ViT/DeiT keys -> QuantViT keys (the fused qkv projection split into q, k, v)."""
    out = {}
    for key, value in sd.items():
        if key.startswith("patch_embed.proj."):
            out["patch_embed." + key.split(".")[-1]] = value
        elif ".attn.qkv." in key:
            prefix, kind = key.split(".attn.qkv.")
            for name, part in zip(("q", "k", "v"), value.chunk(3, dim=0)):
                out[f"{prefix}.attn.{name}.{kind}"] = part
        else:
            out[key] = value
    return out


def _torchvision_to_zoo_keys(sd):
    """torchvision VisionTransformer keys -> QuantViT keys."""
    out = {}
    for key, value in sd.items():
        k = key.replace("conv_proj.", "patch_embed.").replace("class_token", "cls_token")
        k = k.replace("encoder.pos_embedding", "pos_embed").replace("encoder.ln.", "norm.")
        k = k.replace("heads.head.", "head.").replace("encoder.layers.encoder_layer_", "blocks.")
        k = k.replace(".ln_1.", ".norm1.").replace(".ln_2.", ".norm2.")
        k = k.replace(".mlp.0.", ".mlp.fc1.").replace(".mlp.3.", ".mlp.fc2.")
        k = k.replace(".self_attention.out_proj.", ".attn.proj.")
        if ".self_attention.in_proj_" in k:
            prefix, kind = k.split(".self_attention.in_proj_")
            for name, part in zip(("q", "k", "v"), value.chunk(3, dim=0)):
                out[f"{prefix}.attn.{name}.{kind}"] = part
            continue
        out[k] = value
    return out


def load_timm_vit_state_dict(model, state_dict):
    """Load a timm (``patch_embed.proj``, ``blocks.i.attn.qkv``, ...) or torchvision (``conv_proj``,
    ``encoder.layers.encoder_layer_i``, ...) ViT/DeiT state dict into a float ``QuantViT`` of the same size
    (``pooling="cls"``). Distilled DeiT (a distillation token) is not supported: one clear error. Returns the
    missing quantizer keys (as :func:`load_float_state_dict`)."""
    if isinstance(state_dict, dict) and "model" in state_dict and not any(k.startswith("blocks.") for k in state_dict):
        state_dict = state_dict["model"]  # timm/DeiT release checkpoints wrap the weights
    if "dist_token" in state_dict:
        raise ConfigError("state dict is a distilled DeiT (dist_token): only the plain ViT/DeiT layout is supported")
    if any(k.startswith("encoder.layers.") for k in state_dict):
        mapped = _torchvision_to_zoo_keys(state_dict)
    else:
        mapped = _timm_to_zoo_keys(state_dict)
    if getattr(model, "pooling", "gap") != "cls" and "cls_token" in mapped:
        raise ConfigError("state dict has a class token: build the ViT with pooling='cls'")
    return load_float_state_dict(model, mapped)
