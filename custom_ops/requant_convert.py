"""Requantization by conversion: an exact accumulator, scaled by a per-channel fixed-point factor, rounded to a format.

Arithmetic contract (bit exact; the Python here defines the bits, the HLS and RTL requantizers implement it). Per
element with channel ``c`` (the last axis):

1. ``P = acc * M[c] + B[c]`` exactly (``acc``, ``M``, ``B`` integers; ``M`` the S-bit scale mantissa with its sign,
   ``B`` the bias in the same fixed point);
2. ``relu``: ``P = max(P, 0)``;
3. the output is ``P / 2^shift[c]`` (``shift >= 0``) rounded half to even onto the output format's integer grid and
   saturated: for an integer format the integers in ``[min_int, max_int]``; for a minifloat ExMy the integer domain
   (value / 2^lsb_exponent): step 1 below 2^(M+1) (subnormals and the first binade), step 2^(n - M - 1) for
   magnitudes of n >= M + 2 bits, largest magnitude ``max_int`` (sign-magnitude, so rounding is symmetric);
4. ``out = value * 2^lsb_exponent`` (a value of the output format).

In integers: with ``q = |P|``, ``n = max(0, bitlen(q) - shift)`` (the bit length of the integer part of the
magnitude), ``d = shift + max(0, n - M - 1)`` (0 extra bits for integer formats): ``k = RNE(q / 2^d)``,
``magnitude = min(k * 2^(d - shift), max_int)``. Ties go to the even ``k``, i.e. the even code, the tie policy of
Brevitas, QONNX and ``compiler.numerics`` quantizers.

It approximates ``F.round(a * acc + b)`` of the threshold contract (passes/thresholds.py) with ``M / 2^shift`` for
``a`` and ``B / 2^shift`` for ``b`` (``passes/requant_params.py`` derives them); the two differ only where the
rounding of ``a`` to S bits moves a value across a rounding boundary.
"""

import numpy as np

from compiler.errors import UnsupportedNodeError
from compiler.numerics import IntFormat

#: int64 arithmetic holds every intermediate when |P| stays below this; wider products use Python ints
INT64_SAFE = 2**62


def _bitlen(q):
    """Bit length of non-negative int64 values (exact, also beyond float64's 53 bits)."""
    _, exp = np.frexp(q.astype(np.float64))
    bl = exp.astype(np.int64)
    too_big = (bl > 0) & ((q >> np.clip(bl - 1, 0, 62)) == 0)  # float rounding up to the next power of two
    return np.where(too_big, bl - 1, bl)


def _rne_shift(q, d):
    """``RNE(q / 2^d)`` for non-negative int64 ``q`` and ``d >= 0`` (element-wise)."""
    dd = np.minimum(d, 62)
    k = np.where(d > 62, 0, q >> dd)
    r = q - (k << dd)
    half = np.where(dd > 0, np.left_shift(1, np.maximum(dd - 1, 0)), 0)
    up = (d > 0) & (d <= 62) & ((r > half) | ((r == half) & ((k & 1) == 1)))
    return k + up.astype(np.int64)


def _magnitudes_int64(q, shift, fmt):
    if fmt.is_minifloat:
        n = np.maximum(0, _bitlen(q) - shift)
        extra = np.maximum(0, n - fmt.mantissa_bits - 1)
        mag = _rne_shift(q, shift + extra) << extra
        return np.minimum(mag, fmt.max_int)
    return _rne_shift(q, shift)


def _rne_int(q, d):
    k, r = q >> d, q & ((1 << d) - 1)
    half = (1 << d) >> 1
    return k + (1 if d > 0 and (r > half or (r == half and k & 1)) else 0)


def _magnitude_py(q, shift, fmt):
    if fmt.is_minifloat:
        n = max(0, q.bit_length() - shift)
        extra = max(0, n - fmt.mantissa_bits - 1)
        return min(_rne_int(q, shift + extra) << extra, fmt.max_int)
    return _rne_int(q, shift)


def convert_ints(acc, mult, bias, shift, relu, fmt):
    """Integer-domain output values (signed, before the integer format's clipping) of the contract; ``acc`` (..., C)
    integers (int64 or object), ``mult``/``bias``/``shift`` per channel (C,) or one value."""
    acc = np.asarray(acc)
    mult, bias, shift = (np.asarray(v) for v in (mult, bias, shift))
    if np.any(shift.astype(np.int64) < 0):
        raise UnsupportedNodeError(f"conversion shifts must be >= 0, got {shift}")
    a_max = int(np.abs(acc.astype(object)).max()) if acc.size else 0
    p_max = a_max * int(np.abs(mult.astype(object)).max()) + int(np.abs(bias.astype(object)).max())
    if acc.dtype != object and p_max < INT64_SAFE and mult.dtype != object and bias.dtype != object:
        p = acc.astype(np.int64) * mult.astype(np.int64) + bias.astype(np.int64)
        if relu:
            p = np.maximum(p, 0)
        mag = _magnitudes_int64(np.abs(p), np.broadcast_to(shift.astype(np.int64), p.shape), fmt)
        return np.where(p < 0, -mag, mag)
    p = acc.astype(object) * mult.astype(object) + bias.astype(object)
    sh = np.broadcast_to(shift.astype(object), p.shape)
    out = np.empty(p.shape, dtype=object)
    for idx in np.ndindex(p.shape):
        v = int(p[idx])
        if relu and v < 0:
            v = 0
        m = _magnitude_py(abs(v), int(sh[idx]), fmt)
        out[idx] = -m if v < 0 else m
    return out


def convert_requant(acc, mult, bias, shift, relu, fmt):
    """The contract above: values of ``fmt`` (float32) for integer accumulators ``acc`` (..., C)."""
    ints = convert_ints(acc, mult, bias, shift, relu, fmt)
    if isinstance(fmt, IntFormat):
        ints = np.clip(ints.astype(object), fmt.min_int, fmt.max_int_value)
    return np.ldexp(np.asarray(ints, dtype=np.float64), fmt.lsb_exponent).astype(np.float32)
