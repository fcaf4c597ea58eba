"""The zoo's small residual CNN: stem convolution, one residual block, pooling and a linear head (see
``compiler.zoo.spec`` for the quantization layout)."""

import brevitas.nn as qnn
import torch
from torch import nn

from compiler.errors import ConfigError
from compiler.zoo.spec import QuantSites, check_positive


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
    """Small ResNet-style CNN: input quantizer, stem conv3x3-BN-ReLU, ``stages`` times (residual block, 2x2 max/avg
    pooling), global average pooling ("gap") or flatten, quantizer, linear head.

    Sites: ``input_quant``/``stem_conv`` (first), ``stem_act``, ``block.*`` (the first stage), ``block2.*`` ...
    (further stages), ``head_quant``/``head`` (last).
    """

    def __init__(self, spec, in_channels=1, num_classes=10, width=16, image_size=28, pool="max", global_pool="gap",
                 stages=1):
        super().__init__()
        check_positive(in_channels=in_channels, num_classes=num_classes, width=width, image_size=image_size,
                       stages=stages)
        if image_size < 2 ** stages:
            raise ConfigError(f"build_cnn: image_size {image_size} is too small for {stages} 2x2 poolings")
        if pool not in ("max", "avg"):
            raise ConfigError(f"build_cnn: pool must be 'max' or 'avg', got {pool!r}")
        if global_pool not in ("gap", "flatten"):
            raise ConfigError(f"build_cnn: global_pool must be 'gap' or 'flatten', got {global_pool!r}")
        if image_size < 2:
            raise ConfigError(f"build_cnn: image_size must be >= 2 for the 2x2 pooling, got {image_size}")
        q = QuantSites(spec)
        self.in_channels, self.image_size = int(in_channels), int(image_size)
        self.input_quant = qnn.QuantIdentity(act_quant=q.act("input_quant", "first"))
        self.stem_conv = qnn.QuantConv2d(in_channels, width, 3, padding=1, bias=False,
                                         weight_quant=q.weight("stem_conv", "first"))
        self.stem_bn = nn.BatchNorm2d(width)
        self.stem_act = qnn.QuantReLU(act_quant=q.act("stem_act"))
        self.block = ResidualBlock(q, "block", width)
        self.pool = nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2)
        # further stages at half the resolution each: a wider receptive field before the global pooling
        self.n_stages = int(stages)
        for i in range(2, self.n_stages + 1):
            setattr(self, f"block{i}", ResidualBlock(q, f"block{i}", width))
            setattr(self, f"pool{i}", nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
        if global_pool == "gap":
            self.global_pool = nn.AdaptiveAvgPool2d(1)
            head_in = width
        else:
            self.global_pool = nn.Identity()
            head_in = width * (image_size // 2 ** stages) ** 2
        self.head_quant = qnn.QuantIdentity(act_quant=q.act("head_quant", "last"))
        self.head = qnn.QuantLinear(head_in, num_classes, bias=True, weight_quant=q.weight("head", "last"))
        q.finish(self)

    def forward(self, x):
        x = self.input_quant(x)
        x = self.stem_act(self.stem_bn(self.stem_conv(x)))
        x = self.pool(self.block(x))
        for i in range(2, self.n_stages + 1):
            x = getattr(self, f"pool{i}")(getattr(self, f"block{i}")(x))
        x = self.global_pool(x)
        x = self.head_quant(torch.flatten(x, 1))
        return self.head(x)


def build_cnn(spec, in_channels=1, num_classes=10, width=16, image_size=28, pool="max", global_pool="gap", stages=1):
    return QuantCNN(spec, in_channels=in_channels, num_classes=num_classes, width=width, image_size=image_size,
                    pool=pool, global_pool=global_pool, stages=stages)
