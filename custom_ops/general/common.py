"""Helpers shared by the lowered graph's ops: formats of datatype names, exact integer arrays."""

import numpy as np

from compiler.errors import UnsupportedNodeError
from compiler.numerics import IntFormat, MinifloatFormat

#: integers beyond this magnitude are held as Python ints (numpy object arrays) so no sum can overflow int64
INT64_SAFE = 2**62


def format_of(dtype_name, where=""):
    """compiler.numerics format of a qonnx DataType name (``FLOAT<e,m,b>``, ``INTn``, ``UINTn``)."""
    name = str(dtype_name)
    try:
        if name.startswith("FLOAT<"):
            return MinifloatFormat.from_qonnx(name)
        if name.startswith("INT") or name.startswith("UINT"):
            return IntFormat.from_qonnx(name)
    except ValueError as exc:
        raise UnsupportedNodeError(f"{where}: bad datatype {name}: {exc}") from None
    raise UnsupportedNodeError(
        f"{where}: datatype {name} is not a minifloat (FLOAT<e,m,b>) or integer (INTn/UINTn) type"
    )


def exact_ints(values, fmt, where=""):
    """Values of ``fmt`` (float containers) -> exact integers ``value / 2**lsb_exponent`` (int64 numpy array)."""
    scaled = np.ldexp(np.asarray(values, dtype=np.float64), -fmt.lsb_exponent)
    ints = np.rint(scaled)
    if np.any(ints != scaled) or np.any(np.abs(ints) > fmt.max_int):
        bad = np.asarray(values).ravel()[np.flatnonzero((ints != scaled) | (np.abs(ints) > fmt.max_int))[0]]
        raise UnsupportedNodeError(f"{where}: tensor holds {bad!r}, which is not a value of {fmt.name}")
    return ints.astype(np.int64)


def widen(arr, bound):
    """``arr`` as int64 when every result up to ``|bound|`` fits, else as an object array of Python ints."""
    arr = np.asarray(arr)
    if bound < INT64_SAFE:
        return arr.astype(np.int64)
    return np.array([int(v) for v in arr.ravel()], dtype=object).reshape(arr.shape)


def bits_for_range(lo, hi):
    """Smallest signed two's complement width holding every integer in [lo, hi] (at least 2)."""
    lo, hi = int(lo), int(hi)
    bits = 2
    while not (-(2 ** (bits - 1)) <= lo and hi <= 2 ** (bits - 1) - 1):
        bits += 1
    return bits
