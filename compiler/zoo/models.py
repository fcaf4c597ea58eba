"""The Brevitas model zoo: MLP, small residual CNN and a hand-written ViT, each built from a ``QuantSpec``.

Quantization layout (what the hardware sees):

* weights: per-output-channel scale (``quantizers.weight_quant``), activations: per-tensor calibrated scale
  (``quantizers.act_quant``);
* every input of a Linear / Conv / MatMul and both operands of every Add are outputs of a quantizer, so each of those
  ops is quantizer-to-quantizer; GELU, Softmax and LayerNorm also read and write quantized tensors (so they can
  become tables or exact ops), ReLU is fused into its output quantizer (QuantReLU: a threshold op on the
  accumulator / batch-norm output);
* model outputs (logits) are not quantized.

``"float"`` (for the whole spec or one site) keeps the identical module structure with the quantizer switched off,
so parameter names are the same in float and quantized models. PTQ in this project: train the float model, build
the quantized model from the same builder, ``load_float_state_dict``, calibrate the activation scales
(``brevitas.graph.calibrate.calibration_mode``).

Every quantizer site has a name (the module's name in ``model.named_modules()``); ``model.quant_sites`` maps it to
``{"kind": "weight" | "act", "role": "first" | "last" | "body", "format": <qonnx name or "float">, "name": <short
name, e.g. "e3m2", "int4n" (integer weights are narrow-range), "float">}``.
"""

import fnmatch
import math
import re
from dataclasses import dataclass, field

import brevitas.nn as qnn
import torch
import torch.nn.functional as F
from torch import nn

from compiler.errors import ConfigError, FormatError
from compiler.numerics import FORMAT_HELP
from compiler.zoo.quantizers import act_quant, format_of_quantizer, to_format, weight_quant


class QuantSpecError(FormatError):
    """An invalid quantization spec (unknown key, bad format, override that matches no quantizer)."""


class UnknownModelError(ConfigError):
    """A model name that the zoo does not know."""


# ---------------------------------------------------------------------------------------------------------------
# QuantSpec
# ---------------------------------------------------------------------------------------------------------------

_SPEC_KEYS = {"w": "weights", "weights": "weights", "a": "acts", "acts": "acts", "first": "first", "last": "last"}


def _format_name(fmt):
    return "float" if fmt is None else fmt.qonnx_name


@dataclass
class QuantSpec:
    """Per-layer quantization of a zoo model.

    ``weights`` / ``acts``: default formats of weights and activations ("fp:eXmY", "int:N", "uint:N" for
    activations, "float"). ``first``: format of the first layer (patch embedding / first conv / first linear)
    weights and of the input quantizer feeding it; ``last``: format of the classifier head's weights and of the
    quantizer feeding the head; ``None`` = use ``weights`` / ``acts``. ``overrides``: ``{module name or fnmatch
    pattern: format}`` for single quantizer sites (names in ``model.quant_sites``); an exact name beats a pattern,
    a later pattern beats an earlier one, overrides beat first/last. Every override must match a site.
    """

    weights: str = "float"
    acts: str = "float"
    first: str = None
    last: str = None
    overrides: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.overrides, dict):
            raise QuantSpecError(
                f"QuantSpec.overrides must be a dict {{module name: format}}, got {type(self.overrides).__name__}"
            )
        for key in ("weights", "acts"):
            if getattr(self, key) is None:
                raise QuantSpecError(f"QuantSpec.{key} is None; give a format ({FORMAT_HELP})")
        # validate eagerly so a bad spec fails before any model is built
        self._checked("weights", self.weights, weight_quant)
        self._checked("acts", self.acts, act_quant)
        for key in ("first", "last"):
            value = getattr(self, key)
            if value is not None:  # first/last set both the layer's weights and its input activations
                self._checked(key, value, weight_quant)
                self._checked(key, value, act_quant)
        for name, value in self.overrides.items():
            if not isinstance(name, str) or not name:
                raise QuantSpecError(f"QuantSpec.overrides keys are module names or patterns, got {name!r}")
            self._checked(f"overrides[{name!r}]", value)

    @staticmethod
    def _checked(what, value, factory=None):
        try:
            to_format(value, f"QuantSpec.{what}")
            if factory is not None:
                factory(value)
        except FormatError as exc:
            text = str(exc)
            raise QuantSpecError(text if text.startswith("QuantSpec.") else f"QuantSpec.{what}: {text}") from None
        return value

    # --- construction ----------------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text):
        """``"fp:e3m2"`` (weights and activations) or ``"w=fp:e2m1,a=fp:e3m2,first=int:8,last=int:8,fc1=int:4"``.

        Keys: ``w``/``weights``, ``a``/``acts``, ``first``, ``last``; any other key is an override (module name or
        pattern). Items are separated by ``,`` or ``;``.
        """
        text = str(text).strip()
        if not text:
            raise QuantSpecError("empty quantization spec; give e.g. 'fp:e3m2' or 'w=fp:e2m1,a=fp:e3m2'")
        if "=" not in text:
            return cls(weights=text, acts=text)
        fields, overrides = {}, {}
        for item in re.split(r"[,;]", text):
            item = item.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key or not value:
                raise QuantSpecError(
                    f"bad item {item!r} in quantization spec {text!r}; expected key=format, keys: "
                    f"{', '.join(sorted(_SPEC_KEYS))} or a module name"
                )
            target = _SPEC_KEYS.get(key.lower())
            store, name = (fields, target) if target else (overrides, key)
            if name in store:
                raise QuantSpecError(f"'{key}' is given twice in quantization spec {text!r}")
            store[name] = value
        if "weights" not in fields and "acts" not in fields:
            raise QuantSpecError(f"quantization spec {text!r} sets neither weights (w=...) nor activations (a=...)")
        fields.setdefault("weights", fields.get("acts"))
        fields.setdefault("acts", fields.get("weights"))
        return cls(**fields, overrides=overrides)

    @classmethod
    def coerce(cls, spec):
        """A QuantSpec from a QuantSpec, a spec string (``parse``) or a dict of QuantSpec fields."""
        if isinstance(spec, cls):
            return spec
        if isinstance(spec, str):
            return cls.parse(spec)
        if isinstance(spec, dict):
            unknown = sorted(set(spec) - {"weights", "acts", "first", "last", "overrides"})
            if unknown:
                raise QuantSpecError(
                    f"unknown QuantSpec field(s) {unknown}; fields are weights, acts, first, last, overrides"
                )
            return cls(**spec)
        raise QuantSpecError(
            f"a quantization spec is a QuantSpec, a string like 'fp:e3m2' or a dict, got {type(spec).__name__}"
        )

    def to_dict(self):
        return {"weights": self.weights, "acts": self.acts, "first": self.first, "last": self.last,
                "overrides": dict(self.overrides)}

    def __str__(self):
        parts = [f"w={self.weights}", f"a={self.acts}"]
        parts += [f"{k}={getattr(self, k)}" for k in ("first", "last") if getattr(self, k) is not None]
        parts += [f"{k}={v}" for k, v in self.overrides.items()]
        return ",".join(parts)

    @property
    def is_float(self):
        """True when no site can be quantized (every format is 'float')."""
        values = [self.weights, self.acts, self.first, self.last, *self.overrides.values()]
        return all(v is None or to_format(v) is None for v in values)

    # --- resolution ------------------------------------------------------------------------------------------
    def format_for(self, name, kind, role="body"):
        """The format string of quantizer site ``name`` (kind "weight"/"act", role "first"/"last"/"body")."""
        if name in self.overrides:
            return self.overrides[name]
        matched = [pat for pat in self.overrides if fnmatch.fnmatchcase(name, pat)]
        if matched:
            return self.overrides[matched[-1]]
        if role == "first" and self.first is not None:
            return self.first
        if role == "last" and self.last is not None:
            return self.last
        return self.weights if kind == "weight" else self.acts


class _Sites:
    """Hands out quantizers for named sites while a model is built, and checks the spec's overrides at the end."""

    def __init__(self, spec):
        self.spec = QuantSpec.coerce(spec)
        self.sites = {}

    def _quant(self, name, kind, role):
        if name in self.sites:
            raise RuntimeError(f"quantizer site {name!r} defined twice")  # a bug in a builder, not user input
        value = self.spec.format_for(name, kind, role)
        try:
            quant = (weight_quant if kind == "weight" else act_quant)(value)
        except FormatError as exc:
            raise QuantSpecError(f"quantizer site {name!r} ({kind}, {role} layer): {exc}") from None
        effective = format_of_quantizer(quant)  # integer weights are always narrow-range
        self.sites[name] = {"kind": kind, "role": role, "format": _format_name(effective),
                            "name": "float" if effective is None else effective.name}
        return quant

    def weight(self, name, role="body"):
        return self._quant(name, "weight", role)

    def act(self, name, role="body"):
        return self._quant(name, "act", role)

    def finish(self, model):
        unmatched = [
            key for key in self.spec.overrides
            if key not in self.sites and not any(fnmatch.fnmatchcase(s, key) for s in self.sites)
        ]
        if unmatched:
            raise QuantSpecError(
                f"override(s) {unmatched} match no quantizer of {type(model).__name__}; its quantizer sites are: "
                f"{', '.join(self.sites)}"
            )
        modules = dict(model.named_modules())
        missing = [name for name in self.sites if name not in modules]
        if missing:
            raise RuntimeError(f"quantizer sites {missing} are not modules of {type(model).__name__}")
        model.quant_sites = dict(self.sites)
        model.quant_spec = self.spec
        return model


# ---------------------------------------------------------------------------------------------------------------
# MLP
# ---------------------------------------------------------------------------------------------------------------


class QuantMLP(nn.Module):
    """input quantizer -> [QuantLinear -> BN? -> QuantReLU] x len(hidden) -> QuantLinear head.

    Sites: ``input_quant`` (first), ``fc1`` (first), ``act{i}``, ``fc{i}``, the last ``act{n}`` and ``head`` (last).
    The input is flattened, so (B, 1, 8, 8) digits and (B, 64) vectors both work.
    """

    def __init__(self, spec, in_features=64, hidden=(64, 64), num_classes=10, batchnorm=True):
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if not hidden or min(hidden) < 1:
            raise ConfigError(f"build_mlp: hidden must be a non-empty tuple of positive widths, got {hidden!r}")
        _check_positive(in_features=in_features, num_classes=num_classes)
        q = _Sites(spec)
        self.in_features = int(in_features)
        self.num_layers = len(hidden)
        self.batchnorm = bool(batchnorm)
        self.input_quant = qnn.QuantIdentity(act_quant=q.act("input_quant", "first"))
        prev = self.in_features
        for i, width in enumerate(hidden, start=1):
            setattr(self, f"fc{i}", qnn.QuantLinear(prev, width, bias=not batchnorm,
                                                   weight_quant=q.weight(f"fc{i}", "first" if i == 1 else "body")))
            if batchnorm:
                setattr(self, f"bn{i}", nn.BatchNorm1d(width))
            role = "last" if i == len(hidden) else "body"  # the last ReLU's quantizer is the head's input
            setattr(self, f"act{i}", qnn.QuantReLU(act_quant=q.act(f"act{i}", role)))
            prev = width
        self.head = qnn.QuantLinear(prev, num_classes, bias=True, weight_quant=q.weight("head", "last"))
        q.finish(self)

    def forward(self, x):
        x = torch.flatten(x, 1)
        if x.shape[1] != self.in_features:
            raise ValueError(f"QuantMLP expects {self.in_features} input features, got {x.shape[1]}")
        x = self.input_quant(x)
        for i in range(1, self.num_layers + 1):
            x = getattr(self, f"fc{i}")(x)
            if self.batchnorm:
                x = getattr(self, f"bn{i}")(x)
            x = getattr(self, f"act{i}")(x)
        return self.head(x)


# ---------------------------------------------------------------------------------------------------------------
# CNN
# ---------------------------------------------------------------------------------------------------------------


class ResidualBlock(nn.Module):
    """conv1-BN-ReLU-conv2-BN, + skip, ReLU. The skip input is already quantized (the previous ReLU's quantizer),
    the branch is quantized by ``branch_quant``, so the add is quantizer-to-quantizer."""

    def __init__(self, q, prefix, channels):
        super().__init__()
        self.conv1 = qnn.QuantConv2d(channels, channels, 3, padding=1, bias=False,
                                     weight_quant=q.weight(f"{prefix}.conv1"))
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = qnn.QuantReLU(act_quant=q.act(f"{prefix}.act1"))
        self.conv2 = qnn.QuantConv2d(channels, channels, 3, padding=1, bias=False,
                                     weight_quant=q.weight(f"{prefix}.conv2"))
        self.bn2 = nn.BatchNorm2d(channels)
        self.branch_quant = qnn.QuantIdentity(act_quant=q.act(f"{prefix}.branch_quant"))
        self.act_out = qnn.QuantReLU(act_quant=q.act(f"{prefix}.act_out"))

    def forward(self, x):
        y = self.act1(self.bn1(self.conv1(x)))
        y = self.branch_quant(self.bn2(self.conv2(y)))
        return self.act_out(x + y)


class QuantCNN(nn.Module):
    """Small ResNet-style CNN: input quantizer, stem conv3x3-BN-ReLU, one residual block, 2x2 max/avg pooling,
    global average pooling ("gap") or flatten, quantizer, linear head.

    Sites: ``input_quant``/``stem_conv`` (first), ``stem_act``, ``block.*``, ``head_quant``/``head`` (last).
    """

    def __init__(self, spec, in_channels=1, num_classes=10, width=16, image_size=28, pool="max", global_pool="gap"):
        super().__init__()
        _check_positive(in_channels=in_channels, num_classes=num_classes, width=width, image_size=image_size)
        if pool not in ("max", "avg"):
            raise ConfigError(f"build_cnn: pool must be 'max' or 'avg', got {pool!r}")
        if global_pool not in ("gap", "flatten"):
            raise ConfigError(f"build_cnn: global_pool must be 'gap' or 'flatten', got {global_pool!r}")
        if image_size < 2:
            raise ConfigError(f"build_cnn: image_size must be >= 2 for the 2x2 pooling, got {image_size}")
        q = _Sites(spec)
        self.in_channels, self.image_size = int(in_channels), int(image_size)
        self.input_quant = qnn.QuantIdentity(act_quant=q.act("input_quant", "first"))
        self.stem_conv = qnn.QuantConv2d(in_channels, width, 3, padding=1, bias=False,
                                         weight_quant=q.weight("stem_conv", "first"))
        self.stem_bn = nn.BatchNorm2d(width)
        self.stem_act = qnn.QuantReLU(act_quant=q.act("stem_act"))
        self.block = ResidualBlock(q, "block", width)
        self.pool = nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2)
        if global_pool == "gap":
            self.global_pool = nn.AdaptiveAvgPool2d(1)
            head_in = width
        else:
            self.global_pool = nn.Identity()
            head_in = width * (image_size // 2) ** 2
        self.head_quant = qnn.QuantIdentity(act_quant=q.act("head_quant", "last"))
        self.head = qnn.QuantLinear(head_in, num_classes, bias=True, weight_quant=q.weight("head", "last"))
        q.finish(self)

    def forward(self, x):
        x = self.input_quant(x)
        x = self.stem_act(self.stem_bn(self.stem_conv(x)))
        x = self.block(x)
        x = self.global_pool(self.pool(x))
        x = self.head_quant(torch.flatten(x, 1))
        return self.head(x)


# ---------------------------------------------------------------------------------------------------------------
# ViT
# ---------------------------------------------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head self-attention from plain QuantLinear layers (no nn.MultiheadAttention: export, REFERENCE.md).

    in_quant(x) -> q/k/v QuantLinear -> q_quant/k_quant/v_quant -> scores_quant(Q K^T / sqrt(d)) -> softmax ->
    attn_quant -> ctx_quant(A V) -> proj QuantLinear -> proj_quant (the residual add's branch operand).
    """

    def __init__(self, q, prefix, dim, heads, num_tokens):
        super().__init__()
        self.heads, self.head_dim, self.num_tokens, self.dim = heads, dim // heads, num_tokens, dim
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.in_quant = qnn.QuantIdentity(act_quant=q.act(f"{prefix}.in_quant"))
        for name in ("q", "k", "v"):
            setattr(self, name, qnn.QuantLinear(dim, dim, bias=True, weight_quant=q.weight(f"{prefix}.{name}")))
            setattr(self, f"{name}_quant", qnn.QuantIdentity(act_quant=q.act(f"{prefix}.{name}_quant")))
        self.scores_quant = qnn.QuantIdentity(act_quant=q.act(f"{prefix}.scores_quant"))
        self.attn_quant = qnn.QuantIdentity(act_quant=q.act(f"{prefix}.attn_quant"))
        self.ctx_quant = qnn.QuantIdentity(act_quant=q.act(f"{prefix}.ctx_quant"))
        self.proj = qnn.QuantLinear(dim, dim, bias=True, weight_quant=q.weight(f"{prefix}.proj"))
        self.proj_quant = qnn.QuantIdentity(act_quant=q.act(f"{prefix}.proj_quant"))

    def _split(self, x):  # (B, N, D) -> (B, H, N, d); batch as -1 keeps the exported graph batch-agnostic
        return x.reshape(-1, self.num_tokens, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x):
        x = self.in_quant(x)
        q = self._split(self.q_quant(self.q(x)))
        k = self._split(self.k_quant(self.k(x)))
        v = self._split(self.v_quant(self.v(x)))
        scores = self.scores_quant(torch.matmul(q, k.transpose(-2, -1)) * self.scale)
        attn = self.attn_quant(torch.softmax(scores, dim=-1))
        ctx = self.ctx_quant(torch.matmul(attn, v))
        ctx = ctx.permute(0, 2, 1, 3).reshape(-1, self.num_tokens, self.dim)
        return self.proj_quant(self.proj(ctx))


class Mlp(nn.Module):
    """in_quant -> fc1 -> fc1_quant -> GELU -> gelu_quant -> fc2 -> fc2_quant (the residual add's branch operand)."""

    def __init__(self, q, prefix, dim, hidden):
        super().__init__()
        self.in_quant = qnn.QuantIdentity(act_quant=q.act(f"{prefix}.in_quant"))
        self.fc1 = qnn.QuantLinear(dim, hidden, bias=True, weight_quant=q.weight(f"{prefix}.fc1"))
        self.fc1_quant = qnn.QuantIdentity(act_quant=q.act(f"{prefix}.fc1_quant"))
        self.gelu = nn.GELU()
        self.gelu_quant = qnn.QuantIdentity(act_quant=q.act(f"{prefix}.gelu_quant"))
        self.fc2 = qnn.QuantLinear(hidden, dim, bias=True, weight_quant=q.weight(f"{prefix}.fc2"))
        self.fc2_quant = qnn.QuantIdentity(act_quant=q.act(f"{prefix}.fc2_quant"))

    def forward(self, x):
        x = self.gelu_quant(self.gelu(self.fc1_quant(self.fc1(self.in_quant(x)))))
        return self.fc2_quant(self.fc2(x))


class Block(nn.Module):
    """Pre-norm transformer block; the residual stream is re-quantized after each add (resid1_quant, resid2_quant),
    so LayerNorm inputs and both operands of the next add are quantized."""

    def __init__(self, q, prefix, dim, heads, mlp_hidden, num_tokens):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(q, f"{prefix}.attn", dim, heads, num_tokens)
        self.resid1_quant = qnn.QuantIdentity(act_quant=q.act(f"{prefix}.resid1_quant"))
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(q, f"{prefix}.mlp", dim, mlp_hidden)
        self.resid2_quant = qnn.QuantIdentity(act_quant=q.act(f"{prefix}.resid2_quant"))

    def forward(self, x):
        x = self.resid1_quant(x + self.attn(self.norm1(x)))
        return self.resid2_quant(x + self.mlp(self.norm2(x)))


class QuantViT(nn.Module):
    """Tiny ViT: conv patch embedding, optional class token, learned positional embedding, pre-norm blocks,
    pooling, LayerNorm, linear head.

    Pooling (``pooling``): "gap" (default) averages the tokens, "cls" prepends a learned class token and reads it
    out. GAP is the default because (1) it needs no constant token injected into the token stream: the "cls" graph
    prepends a zero token (Pad) and folds the class token into the positional embedding: an extra op, and an extra
    token for every block, while GAP is FINN's GlobalAccPool; (2) the token count stays the patch count
    ((image/patch)^2); (3) on small data GAP trains at least as well as a class token (Beyer et al. 2022, "Better
    plain ViT baselines for ImageNet-1k"; timm's avg-pool ViTs). The final LayerNorm is applied after pooling
    (timm's ``fc_norm`` for GAP; identical to norm-then-select for "cls") so it runs on one vector per image.

    Sites: ``input_quant``/``patch_embed`` (first), ``tokens_quant``, ``pos_quant`` (the positional embedding,
    a constant), ``embed_quant``, ``blocks.{i}.*``, ``pool_quant`` (gap only), ``head_quant``/``head`` (last).
    """

    def __init__(self, spec, image_size=28, in_channels=1, patch_size=4, dim=64, depth=4, heads=4, mlp_ratio=2,
                 num_classes=10, pooling="gap"):
        super().__init__()
        _check_positive(image_size=image_size, in_channels=in_channels, patch_size=patch_size, dim=dim, depth=depth,
                        heads=heads, mlp_ratio=mlp_ratio, num_classes=num_classes)
        if image_size % patch_size:
            raise ConfigError(f"build_vit: image_size {image_size} is not a multiple of patch_size {patch_size}")
        if dim % heads:
            raise ConfigError(f"build_vit: dim {dim} is not divisible by heads {heads}")
        if pooling not in ("gap", "cls"):
            raise ConfigError(f"build_vit: pooling must be 'gap' (global average pooling) or 'cls', got {pooling!r}")
        mlp_hidden = int(round(dim * mlp_ratio))
        if mlp_hidden < 1:
            raise ConfigError(f"build_vit: dim * mlp_ratio = {dim * mlp_ratio} gives no MLP hidden units")
        q = _Sites(spec)
        self.image_size, self.in_channels, self.patch_size, self.dim = image_size, in_channels, patch_size, dim
        self.pooling = pooling
        self.num_patches = (image_size // patch_size) ** 2
        self.num_tokens = self.num_patches + (1 if pooling == "cls" else 0)
        self.input_quant = qnn.QuantIdentity(act_quant=q.act("input_quant", "first"))
        self.patch_embed = qnn.QuantConv2d(in_channels, dim, patch_size, stride=patch_size, bias=True,
                                           weight_quant=q.weight("patch_embed", "first"))
        self.tokens_quant = qnn.QuantIdentity(act_quant=q.act("tokens_quant"))
        if pooling == "cls":
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, self.num_tokens, dim) * 0.02)
        self.pos_quant = qnn.QuantIdentity(act_quant=q.act("pos_quant"))
        self.embed_quant = qnn.QuantIdentity(act_quant=q.act("embed_quant"))
        self.blocks = nn.ModuleList(
            Block(q, f"blocks.{i}", dim, heads, mlp_hidden, self.num_tokens) for i in range(depth)
        )
        if pooling == "gap":
            self.pool_quant = qnn.QuantIdentity(act_quant=q.act("pool_quant"))
        self.norm = nn.LayerNorm(dim)
        self.head_quant = qnn.QuantIdentity(act_quant=q.act("head_quant", "last"))
        self.head = qnn.QuantLinear(dim, num_classes, bias=True, weight_quant=q.weight("head", "last"))
        q.finish(self)

    def forward(self, x):
        x = self.patch_embed(self.input_quant(x))  # (B, D, H/p, W/p)
        x = self.tokens_quant(x.flatten(2).transpose(1, 2))  # (B, N, D)
        pos = self.pos_embed
        if self.pooling == "cls":
            # cat(cls, tokens) + pos == pad(tokens, one zero token in front) + cat(pos[0] + cls, pos[1:]):
            # batch-agnostic, and the class token becomes part of the (quantized) positional embedding constant
            x = F.pad(x, (0, 0, 1, 0))
            pos = torch.cat([pos[:, :1] + self.cls_token, pos[:, 1:]], dim=1)
        x = self.embed_quant(x + self.pos_quant(pos))
        for block in self.blocks:
            x = block(x)
        if self.pooling == "cls":
            x = x[:, 0]
        else:
            x = self.pool_quant(x.mean(dim=1))
        x = self.head_quant(self.norm(x))
        return self.head(x)


# ---------------------------------------------------------------------------------------------------------------
# builders
# ---------------------------------------------------------------------------------------------------------------


def _check_positive(**values):
    for name, value in values.items():
        if not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{name} must be a positive number, got {value!r}")


def build_mlp(spec, in_features=64, hidden=(64, 64), num_classes=10, batchnorm=True):
    return QuantMLP(spec, in_features=in_features, hidden=hidden, num_classes=num_classes, batchnorm=batchnorm)


def build_cnn(spec, in_channels=1, num_classes=10, width=16, image_size=28, pool="max", global_pool="gap"):
    return QuantCNN(spec, in_channels=in_channels, num_classes=num_classes, width=width, image_size=image_size,
                    pool=pool, global_pool=global_pool)


def build_vit(spec, image_size=28, in_channels=1, patch_size=4, dim=64, depth=4, heads=4, mlp_ratio=2, num_classes=10,
              pooling="gap"):
    return QuantViT(spec, image_size=image_size, in_channels=in_channels, patch_size=patch_size, dim=dim, depth=depth,
                    heads=heads, mlp_ratio=mlp_ratio, num_classes=num_classes, pooling=pooling)


BUILDERS = {"mlp": build_mlp, "cnn": build_cnn, "vit": build_vit}
ALIASES = {"fc": "mlp", "tfc": "mlp", "resnet": "cnn", "rescnn": "cnn", "convnet": "cnn", "transformer": "vit",
           "vit_tiny": "vit", "vit-tiny": "vit", "tiny_vit": "vit"}


def model_names():
    """Accepted model names: canonical names and aliases."""
    return sorted(BUILDERS) + sorted(ALIASES)


def build_model(name, spec, **cfg):
    """Build zoo model ``name`` ("mlp", "cnn", "vit" or an alias) with quantization ``spec`` and builder kwargs."""
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key not in BUILDERS:
        raise UnknownModelError(f"unknown model {name!r}; valid names: {', '.join(model_names())}")
    builder = BUILDERS[key]
    try:
        return builder(spec, **cfg)
    except TypeError as exc:
        import inspect

        params = [p for p in inspect.signature(builder).parameters if p != "spec"]
        raise ConfigError(f"build_model({key!r}): {exc}; accepted options: {', '.join(params)}") from None


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
