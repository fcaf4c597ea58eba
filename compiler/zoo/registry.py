"""The zoo's registry: model names (canonical and aliases) -> builders, and ``build_model``."""

import inspect

from compiler.errors import ConfigError
from compiler.zoo.cnn import build_cnn
from compiler.zoo.mlp import build_mlp
from compiler.zoo.vit import build_vit


class UnknownModelError(ConfigError):
    """A model name that the zoo does not know."""


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
        params = [p for p in inspect.signature(builder).parameters if p != "spec"]
        raise ConfigError(f"build_model({key!r}): {exc}; accepted options: {', '.join(params)}") from None

