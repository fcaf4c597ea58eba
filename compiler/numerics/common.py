"""Shared pieces of the number formats: width limits, the scale and input checks that make bad input a FormatError
instead of NaN, and exact-integer helpers (int64 or Python-int arrays, two's-complement widths, exact number text)."""

import numpy as np

from compiler.errors import FormatError

HARDWARE_MAX_BITS = 8
#: widest format whose values ``values()`` / ``int_values()`` list (2^24 int64 values are 128 MiB)
MAX_LISTED_BITS = 24
NUMBER_PATTERN = r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?"
FLOAT32_MAX_EXP = 127  # largest finite float32 is (2 - 2^-23) * 2^127
FLOAT32_TINY = float(np.finfo(np.float32).tiny)  # smallest normal float32, 2^-126


def check_scale(scale):
    """``scale`` as float32 if every element is a finite, positive, normal float32 number; else a FormatError saying
    which element is wrong and why (quantization divides by the scale: 0, a subnormal such as 1e-45, inf or NaN
    would turn finite inputs into inf or NaN)."""
    arr = np.asarray(scale, dtype=np.float32)
    flat = arr.ravel()
    for bad, why in ((~np.isfinite(flat), "is not finite"), (flat == 0, "is 0 (quantization divides by the scale)"),
                     (flat < 0, "is negative (quantizer scales are > 0)"),
                     ((flat > 0) & (flat < FLOAT32_TINY), f"is subnormal in float32 (below {FLOAT32_TINY:.3g}), "
                                                           "so x / scale overflows")):
        if np.any(bad):
            where = "" if arr.ndim == 0 else f" at index {int(np.flatnonzero(bad)[0])}"
            raise FormatError(f"scale {float(flat[bad][0]):g}{where} {why}; a scale must be a finite float32 "
                              f"number >= {FLOAT32_TINY:.3g}")
    return arr


def divide_by_scale(x, scale, overflow_error=True):
    """x / scale in float32 (the first operation of qonnx' quantizers), with a checked scale. With
    ``overflow_error`` a finite x whose quotient overflows is a FormatError (a minifloat would quantize the inf to
    NaN); an integer format saturates it, as qonnx does."""
    scale = check_scale(scale)
    with np.errstate(over="ignore"):
        xs = x / scale
    overflow = np.isfinite(x) & ~np.isfinite(xs)
    if overflow_error and np.any(overflow):
        i = np.flatnonzero(overflow.ravel())[0]
        raise FormatError(f"x / scale overflows float32 (x = {float(np.broadcast_to(x, xs.shape).ravel()[i])!r}, "
                          f"scale = {float(np.broadcast_to(scale, xs.shape).ravel()[i])!r}); use a larger scale")
    return scale, xs


def check_listable(fmt):
    if fmt.bits > MAX_LISTED_BITS:
        raise FormatError(f"{fmt.name} has 2^{fmt.bits} values; values() and int_values() list formats of at most "
                          f"{MAX_LISTED_BITS} bits; use int_range() for its range")


def as_float32_finite(x, what="input"):
    arr = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        bad = arr[~np.isfinite(arr)].ravel()[0]
        raise FormatError(f"{what} contains {bad}: only finite numbers can be quantized or encoded")
    return arr


def int_array(values):
    """int64 array when every value fits comfortably, else an object array of Python ints (exact)."""
    values = list(values)
    if all(-(2**62) < v < 2**62 for v in values):
        return np.array(values, dtype=np.int64)
    return np.array(values, dtype=object)


def signed_width(lo, hi):
    """Smallest two's-complement width holding every integer in [lo, hi]."""
    lo, hi = int(lo), int(hi)
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def number_text(x):
    """A float as the shortest text that reads back exactly: '448', '0.875'."""
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 2**53 else repr(x)
