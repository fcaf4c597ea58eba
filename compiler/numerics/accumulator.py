"""Exact (Kulisch) accumulator widths for dot products of two formats: the paper's worst-case formula, the exact
worst case, and the data-aware width from known integer weights."""

import math

import numpy as np

from compiler.errors import FormatError
from compiler.numerics.common import signed_width


def magnitude_bits(fmt):
    """Magnitude bits of a format in the paper's accumulator formulas: 2^E + M - 1 for minifloats (the bit length of
    max_int), r for r-bit integers (the paper counts the integer's sign bit too)."""
    if fmt.is_minifloat:
        return 2**fmt.exponent_bits + fmt.mantissa_bits - 1
    return fmt.bits


def accumulator_bits(fmt_a, fmt_b, k):
    """Worst-case exact accumulator width for dot products of length k (Shedding the Bits' formulas).

    bits = mag_a + mag_b + ceil(log2 k) + 1, which is r_a + r_b + ceil(log2 k) + 1 for integers and
    2^E_a + M_a + 2^E_b + M_b + ceil(log2 k) - 1 for minifloats.
    """
    if k < 1:
        raise FormatError(f"dot-product length k must be >= 1, got {k}")
    return magnitude_bits(fmt_a) + magnitude_bits(fmt_b) + math.ceil(math.log2(k)) + 1


def accumulator_bits_exact(fmt_a, fmt_b, k):
    """Smallest signed width that holds every dot product of length k of the two formats."""
    if k < 1:
        raise FormatError(f"dot-product length k must be >= 1, got {k}")
    a, b = fmt_a.int_range(), fmt_b.int_range()
    prods = [int(x) * int(y) for x in a for y in b]
    return signed_width(k * min(prods), k * max(prods))


def accumulator_bits_from_weights(weight_ints, fmt_a):
    """Data-aware width: the smallest signed width holding sum_k w[k, n] * a[k] for every column n of the integer
    weights (K, N) and every activation vector a of ``fmt_a`` (integer domain)."""
    w = np.asarray(weight_ints)
    if w.ndim == 1:
        w = w[:, None]
    if w.ndim != 2:
        raise FormatError(f"weight_ints must be (K, N) integers, got shape {w.shape}")
    a_lo, a_hi = (int(v) for v in fmt_a.int_range())
    wl = w.astype(object)
    hi = (np.maximum(wl * a_lo, wl * a_hi)).sum(axis=0)
    lo = (np.minimum(wl * a_lo, wl * a_hi)).sum(axis=0)
    return signed_width(min(int(x) for x in lo), max(int(x) for x in hi))
