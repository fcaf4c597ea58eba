"""Parameters of requantization by conversion (custom_ops/requant_convert.py) from a requantizer's exact affine map.

A requantizer of the lowered graph computes ``F.round(relu?(a_c * acc + b_c) / s)`` exactly (passes/thresholds.py).
With ``m_c = a_c / (s * 2^lsb)`` and ``o_c = b_c / (s * 2^lsb)`` (``lsb`` the output format's LSB exponent, so
``m_c * acc + o_c`` is in the format's integer domain), the conversion uses

    shift_c = S - 1 - floor(log2 |m_c|)   (at least 0),   M_c = RNE(m_c * 2^shift_c),   B_c = RNE(o_c * 2^shift_c)

so ``|M_c|`` has S significant bits (``2^(S-1) <= |M_c| < 2^S``; more only when ``|m_c| >= 2^(S-1)``, where the
shift stops at 0 and the rounding of ``M_c`` is exact to an integer). A channel with ``m_c = 0`` gets ``M_c = 0``,
``shift_c = S`` and ``B_c = RNE(o_c * 2^S)``. The relative error of ``M_c / 2^shift_c`` is at most ``2^-S``.
"""

import math
from fractions import Fraction

import numpy as np

from compiler.errors import UnsupportedNodeError
from compiler.numerics import as_fraction
from passes.thresholds import parse_affine

#: default S: 16-bit scale mantissas (one DSP48E1 multiplier with accumulators up to 25 bits)
DEFAULT_SCALE_BITS = 16


def rne(x):
    """Round a Fraction half to even to an int."""
    floor = math.floor(x)
    rest = x - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2):
        return floor + 1
    return floor


def floor_log2(x):
    """floor(log2 x) of a positive Fraction, exactly."""
    e = x.numerator.bit_length() - x.denominator.bit_length()
    if Fraction(2) ** e > x:
        e -= 1
    elif Fraction(2) ** (e + 1) <= x:
        e += 1
    return e


def convert_params(multipliers, offsets, scale_bits=DEFAULT_SCALE_BITS):
    """``(M, B, shift)`` as lists of Python ints for per-channel integer-domain multipliers ``m_c`` and offsets
    ``o_c`` (exact rationals; floats accepted), see the module docstring."""
    if scale_bits < 2:
        raise UnsupportedNodeError(f"the conversion's scale mantissa needs at least 2 bits, got {scale_bits}")
    mults, biases, shifts = [], [], []
    for m, o in zip(multipliers, offsets):
        m, o = as_fraction(m), as_fraction(o)
        if m == 0:
            shift = scale_bits
        else:
            shift = max(0, scale_bits - 1 - floor_log2(abs(m)))
        mult = rne(m * 2**shift)
        if abs(mult) == 2**scale_bits and shift > 0:  # rounded up to the next binade: one bit less of shift
            shift -= 1
            mult = rne(m * 2**shift)
        mults.append(int(mult))
        biases.append(int(rne(o * 2**shift)))
        shifts.append(int(shift))
    return mults, biases, shifts


def params_initializer(mults, biases, shifts):
    """The (C, 3) parameter tensor [M, B, shift] per channel: int64, or decimal strings when a value leaves int64
    (read back with ``custom_ops.general.common.threshold_ints``)."""
    rows = np.array([[int(m), int(b), int(s)] for m, b, s in zip(mults, biases, shifts)], dtype=object)
    if all(-(2**63) <= int(v) < 2**63 for v in rows.ravel()):
        return rows.astype(np.int64)
    return np.array([str(int(v)) for v in rows.ravel()], dtype=object).reshape(rows.shape)


def conversion_params(model, affine, channels, scale_bits=DEFAULT_SCALE_BITS):
    """A new (channels, 3) initializer of conversion parameters from a requantizer's ``affine`` strings (one per
    channel, or one for all: ``passes.thresholds.requant_affine``); returns its name."""
    mults, offsets = parse_affine(affine)
    if len(mults) == 1:
        mults, offsets = mults * channels, offsets * channels
    if len(mults) != channels:
        raise UnsupportedNodeError(f"a requantizer records {len(mults)} affine maps for {channels} channels")
    name = model.make_new_valueinfo_name()
    model.set_initializer(name, params_initializer(*convert_params(mults, offsets, scale_bits)))
    return name
