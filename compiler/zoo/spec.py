"""Quantization spec of the zoo models: which number format every quantizer site gets, and the site bookkeeping.

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
import re
from dataclasses import dataclass, field

from compiler.errors import ConfigError, FormatError
from compiler.numerics import FORMAT_HELP
from compiler.zoo.quantizers import act_quant, format_of_quantizer, to_format, weight_quant


class QuantSpecError(FormatError):
    """An invalid quantization spec (unknown key, bad format, override that matches no quantizer)."""


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


class QuantSites:
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


def eight_bit_format(fmt):
    """The 8-bit format of ``fmt``'s family, for the first and last layer: ``"fp:e4m3"`` for a minifloat
    (``"fp:..."``), ``"int:8"`` for anything else.

    The first layer reads the raw input and the last one produces the logits; both are small, so 8 bits there cost
    little hardware and keep the accuracy that the narrow body formats would lose at the network's ends.
    """
    return "fp:e4m3" if str(fmt).startswith("fp:") else "int:8"


def check_positive(**values):
    """Raise ``ConfigError`` unless every keyword value is a positive number (builder arguments)."""
    for name, value in values.items():
        if not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{name} must be a positive number, got {value!r}")
