"""Helpers shared by the HLS and RTL backends: packing codes into stream words and writing memory files."""

import numpy as np

from compiler.numerics import IntFormat


def codes_of(values, fmt):
    """Values of a format -> integer codes (Python ints, two's complement for wide integer formats)."""
    if isinstance(fmt, IntFormat) and fmt.bits > 8:
        mask = (1 << fmt.bits) - 1
        return np.array([int(v) & mask for v in np.asarray(values).ravel()], dtype=object).reshape(np.shape(values))
    return fmt.encode(values).astype(np.int64)


def pack_words(codes, bits):
    """(..., n) integer codes -> (...) Python-int words, element 0 in the least significant bits."""
    codes = np.asarray(codes)
    flat = codes.reshape(-1, codes.shape[-1])
    mask = (1 << bits) - 1
    words = []
    for row in flat:
        w = 0
        for i, c in enumerate(row):
            w |= (int(c) & mask) << (i * bits)
        words.append(w)
    return words


def unpack_words(words, bits, n, signed=False):
    """Inverse of pack_words: list of words -> (len(words), n) array of codes (int64; object dtype for fields wider
    than 62 bits)."""
    mask = (1 << bits) - 1
    out = []
    for w in words:
        row = []
        for i in range(n):
            c = (int(w) >> (i * bits)) & mask
            if signed and c >> (bits - 1):
                c -= 1 << bits
            row.append(c)
        out.append(row)
    return np.array(out, dtype=object if bits > 62 else np.int64)


def write_hex(path, words, bits):
    digits = max(1, (bits + 3) // 4)
    mask = (1 << bits) - 1
    with open(path, "w") as fh:
        for w in words:
            fh.write(f"{int(w) & mask:0{digits}x}\n")
