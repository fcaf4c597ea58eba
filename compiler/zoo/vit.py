"""The zoo's hand-written ViT: patch embedding, positional embedding, pre-norm transformer blocks built from
plain quantized linears and matmuls (so every product is quantizer-to-quantizer), pooling and a linear head (see
``compiler.zoo.spec`` for the quantization layout)."""

import math

import brevitas.nn as qnn
import torch
import torch.nn.functional as F
from torch import nn

from compiler.errors import ConfigError
from compiler.zoo.spec import QuantSites, check_positive


class Attention(nn.Module):
    """Multi-head self-attention from plain QuantLinear layers (torch's nn.MultiheadAttention does not export with
    ``dynamo=False``: aten::_native_multi_head_attention).

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
        check_positive(image_size=image_size, in_channels=in_channels, patch_size=patch_size, dim=dim, depth=depth,
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
        q = QuantSites(spec)
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


def build_vit(spec, image_size=28, in_channels=1, patch_size=4, dim=64, depth=4, heads=4, mlp_ratio=2, num_classes=10,
              pooling="gap"):
    return QuantViT(spec, image_size=image_size, in_channels=in_channels, patch_size=patch_size, dim=dim, depth=depth,
                    heads=heads, mlp_ratio=mlp_ratio, num_classes=num_classes, pooling=pooling)
