"""Brevitas quantizer classes for any minifinn number format (signed minifloat ExMy or integer).

* ``weight_quant(fmt)``: per-output-channel scale ``absmax(channel) / fmt.max`` (stats, recomputed from the weights
  on every call, so a loaded float state dict is quantized without calibration). Integer weights are always signed
  and narrow-range (symmetric, e.g. int4 -> -7..7), minifloats are symmetric by construction.
* ``act_quant(fmt)``: one per-tensor scale ``percentile_99.999(|x|) / top`` with ``top = fmt.max`` for minifloats and
  Brevitas' integer convention ``top = 2^(bits-1)`` (signed; the positive side saturates one step below) or
  ``2^bits - 1`` (unsigned), initialized from runtime
  statistics: collected under ``brevitas.graph.calibrate.calibration_mode`` (PTQ) or during the first
  ``collect_stats_steps`` training steps, then a learnable parameter. Integers follow the format's signedness
  (``int:N`` signed, ``uint:N`` unsigned); minifloats are always signed (qonnx ``FloatQuant`` assumes a sign bit).

Minifloat quantizers carry ``max_available_float=fmt.max``: Brevitas' QONNX export handler reads it (export of the
non-OCP float quantizers fails without it, README "Your own Brevitas model") and the clamp/scaling use it. The format's
convention is the project's (``compiler.numerics``): bias ``2^(E-1)-1`` unless given, subnormals, no inf/NaN,
saturating, round half to even.
"""

from functools import lru_cache

from brevitas.inject.enum import ScalingPerOutputType
from brevitas.quant.float_base import ScaledFloatActBase, ScaledFloatWeightBase
from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int8WeightPerChannelFloat, Uint8ActPerTensorFloat

from compiler.errors import FormatError
from compiler.numerics import IntFormat, MinifloatFormat, parse_format

#: percentile of |x| that maps to the format's largest value (Brevitas' default for integer activations)
ACT_PERCENTILE = 99.999
#: training steps during which activation statistics are collected before the scale becomes a parameter
ACT_COLLECT_STATS_STEPS = 300


class MinifloatWeightPerChannel(ScaledFloatWeightBase):
    """Signed minifloat weights, one absmax-based float scale per output channel (format set by ``.let``)."""

    scaling_per_output_type = ScalingPerOutputType.CHANNEL
    saturating = True


class MinifloatActPerTensor(ScaledFloatActBase):
    """Signed minifloat activations, one per-tensor float scale from a runtime percentile (format set by ``.let``)."""

    scaling_per_output_type = ScalingPerOutputType.TENSOR
    saturating = True
    scaling_stats_op = "percentile"
    high_percentile_q = ACT_PERCENTILE
    collect_stats_steps = ACT_COLLECT_STATS_STEPS


class IntWeightPerChannel(Int8WeightPerChannelFloat):
    """Signed narrow-range integer weights, per-output-channel absmax scale (bit width set by ``.let``)."""


class IntActPerTensor(Int8ActPerTensorFloat):
    """Signed integer activations, per-tensor scale from a runtime percentile (bit width set by ``.let``)."""

    high_percentile_q = ACT_PERCENTILE
    collect_stats_steps = ACT_COLLECT_STATS_STEPS


class UintActPerTensor(Uint8ActPerTensorFloat):
    """Unsigned integer activations, per-tensor scale from a runtime percentile (bit width set by ``.let``)."""

    high_percentile_q = ACT_PERCENTILE
    collect_stats_steps = ACT_COLLECT_STATS_STEPS


def to_format(fmt, what="format"):
    """A ``MinifloatFormat`` / ``IntFormat`` / ``None`` from a spec string or format object, checked for the zoo.

    The zoo quantizes with Brevitas, which needs at least one mantissa bit for minifloats (E>=1, M>=1).
    """
    try:
        parsed = parse_format(fmt)
    except FormatError as exc:
        raise FormatError(f"{what}: {exc}") from None
    if isinstance(parsed, MinifloatFormat) and parsed.mantissa_bits < 1:
        raise FormatError(
            f"{what}: {parsed.name} has no mantissa bit; the zoo's Brevitas quantizers need ExMy with E >= 1 and "
            "M >= 1 (e.g. 'fp:e2m1', 'fp:e3m2', 'fp:e4m3')"
        )
    if isinstance(parsed, MinifloatFormat) and parsed.exponent_bias == 0 and parsed.default_bias != 0:
        raise FormatError(
            f"{what}: {parsed.qonnx_name} has exponent bias 0, which qonnx reads as the default bias "
            f"{parsed.default_bias}; use a nonzero bias or the default"
        )
    return parsed


def _minifloat_let(fmt):
    return dict(
        bit_width=fmt.bits,
        exponent_bit_width=fmt.exponent_bits,
        mantissa_bit_width=fmt.mantissa_bits,
        exponent_bias=fmt.exponent_bias,
        max_available_float=float(fmt.max),
    )


@lru_cache(maxsize=None)
def _weight_quant(fmt):
    if isinstance(fmt, MinifloatFormat):
        return MinifloatWeightPerChannel.let(**_minifloat_let(fmt))
    if not fmt.signed:
        raise FormatError(
            f"weight format {fmt.name} is unsigned; integer weights are signed narrow-range (use 'int:{fmt.bits}')"
        )
    # always narrow: symmetric weights (negating a column must stay representable, docs/conventions.md)
    return IntWeightPerChannel.let(bit_width=fmt.bits)


@lru_cache(maxsize=None)
def _act_quant(fmt):
    if isinstance(fmt, MinifloatFormat):
        return MinifloatActPerTensor.let(**_minifloat_let(fmt))
    base = IntActPerTensor if fmt.signed else UintActPerTensor
    return base.let(bit_width=fmt.bits, narrow_range=bool(fmt.narrow))


def weight_quant(fmt):
    """Brevitas weight quantizer (per-output-channel scale) for ``fmt``; ``None`` for "float" (no quantization)."""
    parsed = to_format(fmt, "weight format")
    return None if parsed is None else _weight_quant(parsed)


def act_quant(fmt):
    """Brevitas activation quantizer (per-tensor calibrated scale) for ``fmt``; ``None`` for "float"."""
    parsed = to_format(fmt, "activation format")
    return None if parsed is None else _act_quant(parsed)


def format_of_quantizer(quant):
    """Inverse of ``weight_quant``/``act_quant``: the format a zoo quantizer class implements (for reports/tests)."""
    if quant is None:
        return None
    if issubclass(quant, (MinifloatWeightPerChannel, MinifloatActPerTensor)):
        return MinifloatFormat(quant.exponent_bit_width, quant.mantissa_bit_width, quant.exponent_bias,
                               max_value=quant.max_available_float)  # a reduced maximum (ocp:e4m3)
    if issubclass(quant, IntWeightPerChannel):
        return IntFormat(quant.bit_width, signed=True, narrow=True)
    if issubclass(quant, (IntActPerTensor, UintActPerTensor)):
        return IntFormat(quant.bit_width, signed=bool(quant.signed), narrow=bool(quant.narrow_range))
    raise FormatError(f"{quant!r} is not a minifinn zoo quantizer")
