"""Exact rationals of format values: parameters as Fractions, and a format's tie rule asked of its own quantizer."""

import math
from fractions import Fraction

import numpy as np

from compiler.errors import UnsupportedNodeError


def as_fraction(x):
    """Exact rational of a float (or int / Fraction); non-finite values are refused."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, (int, np.integer)):
        return Fraction(int(x))
    x = float(x)
    if not math.isfinite(x):
        raise UnsupportedNodeError(f"non-finite parameter {x} in a scale/bias chain")
    return Fraction(x)


def tie_rounds_up(fmt):
    """The format's tie rule: for every midpoint between consecutive values of ``fmt``, True when an exact tie rounds
    to the upper value. Returns ``(midpoints as Fractions, [bool])``.

    Asked of the format's own quantizer (``quantize``, bit-identical to qonnx), not of a parity rule.
    """
    values = [Fraction(float(v)) for v in fmt.values()]
    mids = [(lo + hi) / 2 for lo, hi in zip(values, values[1:])]
    as32 = np.array([float(m) for m in mids], dtype=np.float32)
    if any(Fraction(float(m32)) != m for m32, m in zip(as32, mids)):
        raise UnsupportedNodeError(f"{fmt.name}: midpoints between values are not representable in float32")
    rounded = fmt.quantize(as32)
    return mids, [Fraction(float(r)) == hi for r, hi in zip(rounded, values[1:])]
