"""The zoo's MLP: input quantizer, quantized linear layers with optional batch norm and fused ReLU quantizers,
linear head (see ``compiler.zoo.spec`` for the quantization layout)."""

import brevitas.nn as qnn
import torch
from torch import nn

from compiler.errors import ConfigError
from compiler.zoo.spec import QuantSites, check_positive


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
        check_positive(in_features=in_features, num_classes=num_classes)
        q = QuantSites(spec)
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


def build_mlp(spec, in_features=64, hidden=(64, 64), num_classes=10, batchnorm=True):
    return QuantMLP(spec, in_features=in_features, hidden=hidden, num_classes=num_classes, batchnorm=batchnorm)
