"""Helpers shared by the lowered graph's ops: exact integer arrays and threshold tensors."""

import numpy as np

from compiler.errors import UnsupportedNodeError

#: integers beyond this magnitude are held as Python ints (numpy object arrays) so no sum can overflow int64
INT64_SAFE = 2**62


def exact_ints(values, fmt, where=""):
    """Values of ``fmt`` (float containers) -> exact integers ``value / 2**lsb_exponent`` (int64 numpy array, or an
    object array of Python ints for formats whose integers reach 2**62: E6M1's reach 2**64.6)."""
    scaled = np.ldexp(np.asarray(values, dtype=np.float64), -fmt.lsb_exponent)
    ints = np.rint(scaled)
    if np.any(ints != scaled) or np.any(np.abs(ints) > fmt.max_int):
        bad = np.asarray(values).ravel()[np.flatnonzero((ints != scaled) | (np.abs(ints) > fmt.max_int))[0]]
        raise UnsupportedNodeError(f"{where}: tensor holds {bad!r}, which is not a value of {fmt.name}")
    if fmt.max_int >= INT64_SAFE:  # float64 holds these integers exactly (few significant bits); int64 may not
        return np.array([int(v) for v in ints.ravel()], dtype=object).reshape(ints.shape)
    return ints.astype(np.int64)


def batch_shape(x, shape):
    """The shape an op's golden model gives its input ``x`` for the node's (batch-1) ``shape``: ``shape`` itself when
    ``x`` has its size (one image, possibly handed over in another shape), ``(N,) + shape[1:]`` when ``x`` is a batch
    of N images on its leading axis (compiler/batched_exec.py), None when it is neither."""
    x, shape = np.asarray(x), tuple(int(d) for d in shape)
    one = int(np.prod(shape))
    if x.size == one:
        return shape
    if shape and shape[0] == 1 and x.ndim and one and x.size == x.shape[0] * one:
        return (x.shape[0],) + shape[1:]
    return None


def widen(arr, bound):
    """``arr`` as int64 when every result up to ``|bound|`` fits, else as an object array of Python ints."""
    arr = np.asarray(arr)
    if bound < INT64_SAFE:
        return arr.astype(np.int64)
    return np.array([int(v) for v in arr.ravel()], dtype=object).reshape(arr.shape)


def _limbs(v, bits):
    """Exact integers in float64 ``v`` -> int64 limbs ``[r_0, r_1, ..., top]`` with ``v = sum r_i 2**(bits*i)``,
    ``0 <= r_i < 2**bits`` and a signed top limb ``|top| <= 2**bits`` (floor and power-of-two scaling are exact)."""
    limbs, step = [], float(2**bits)
    while True:
        if np.all(np.abs(v) < step):
            limbs.append(v.astype(np.int64))
            return limbs
        q = np.floor(v / step)
        limbs.append((v - q * step).astype(np.int64))
        v = q


def exact_matmul(x, w):
    """``x @ w`` (numpy matmul broadcasting) of exact integer arrays, exactly: int64 when no partial sum can leave
    62 bits, else (the 80-130 bit accumulators of 5-6 exponent-bit formats) by limbs. The operands are format
    integers (few significant bits, so float64 holds them exactly), split into limbs of ``b`` bits with
    ``K * 2**(2b) <= 2**58``; every limb product is an int64 matmul and only the (..., M) results are recombined as
    Python ints (object array). Object-dtype matmul of Python ints was ~100x slower."""
    xf, wf = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
    k = xf.shape[-1]
    mx = float(np.abs(xf).max()) if xf.size else 0.0
    mw = float(np.abs(wf).max()) if wf.size else 0.0
    if k * mx * mw < 2**53:  # every product and partial sum is an integer float64 holds exactly: BLAS, exact
        return np.matmul(xf, wf).astype(np.int64)
    if k * mx * mw < INT64_SAFE:
        return np.matmul(xf.astype(np.int64), wf.astype(np.int64))
    bits = (58 - int(np.ceil(np.log2(max(k, 2))))) // 2
    lx, lw = _limbs(xf, bits), _limbs(wf, bits)
    diagonals = {}
    for i, xi in enumerate(lx):
        for j, wj in enumerate(lw):  # |limb product sums| <= K * 2**(2 bits) <= 2**58; <= 8 per diagonal
            part = np.matmul(xi, wj)
            diagonals[i + j] = part if i + j not in diagonals else diagonals[i + j] + part
    acc = None
    for d, part in sorted(diagonals.items()):
        term = part.astype(object) * (1 << (bits * d))
        acc = term if acc is None else acc + term
    return acc


def threshold_initializer(thresholds):
    """Integer thresholds as the value of an initializer: int64 when every one fits, else (the accumulators of 5-6
    exponent-bit formats reach 80-130 bits) an object array of their decimal strings, which ONNX stores as a STRING
    tensor of the same shape: exact at any width. ``threshold_ints`` reads either back."""
    t = np.asarray(thresholds)
    if t.dtype != object:
        return t.astype(np.int64)
    ints = [int(v) for v in t.ravel()]
    if all(-(2**63) <= v < 2**63 for v in ints):
        return np.array(ints, dtype=np.int64).reshape(t.shape)
    return np.array([str(v) for v in ints], dtype=object).reshape(t.shape)


def threshold_ints(value):
    """Thresholds from an initializer or an execution context (``threshold_initializer``'s encodings, or integers in
    a float array, as ``custom_ops.examples`` builds them): an int64 array, or an object array of Python ints when
    they are stored as decimal strings or a float one lies beyond int64."""
    t = np.asarray(value)
    if t.dtype.kind in "OSU":
        return np.array([int(v.decode() if isinstance(v, bytes) else v) for v in t.ravel()],
                        dtype=object).reshape(t.shape)
    if t.dtype.kind == "f" and t.size and np.abs(t).max() >= 2**63:
        return np.array([int(v) for v in t.ravel()], dtype=object).reshape(t.shape)
    return t.astype(np.int64)


def bits_for_range(lo, hi):
    """Smallest signed two's complement width holding every integer in [lo, hi] (at least 2)."""
    lo, hi = int(lo), int(hi)
    bits = 2
    while not (-(2 ** (bits - 1)) <= lo and hi <= 2 ** (bits - 1) - 1):
        bits += 1
    return bits
