"""Stream packing for minifinn accelerators (copied into deploy/driver/ next to driver.py; numpy only).

Values -> codes by the format's code table (``code_values[c]`` is the value of code ``c``; 2^bits entries), codes
-> bytes FINN-style: the innermost (folded) axis is one stream word, element 0 in the least significant bits, the
word padded to whole bytes and stored little-endian -- the layout of finn.util.data_packing
``finnpy_to_packed_bytearray(..., reverse_inner=True, reverse_endian=True)``. Integer accumulator outputs
(``code_values`` empty) are two's complement of ``bits`` bits.
"""

import numpy as np


def encode(values, code_values):
    """Representable values -> codes (uint32). Zero maps to the first code whose value is 0."""
    table = np.asarray(code_values, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(table, kind="stable")
    pos = np.searchsorted(table[order], values)
    pos = np.clip(pos, 0, len(table) - 1)
    codes = order[pos]
    if not np.array_equal(table[codes], values):
        bad = values[table[codes] != values].ravel()[0]
        raise ValueError(f"{bad!r} is not a value of the stream's format; quantize the input first")
    return codes.astype(np.uint32)


def decode(codes, code_values, bits, signed_int=False):
    """Codes -> values (float32), or for accumulator streams (no table) two's complement integers (int64)."""
    codes = np.asarray(codes, dtype=np.int64)
    if len(code_values) == 0:
        return np.where(codes >= 2 ** (bits - 1), codes - 2**bits, codes) if signed_int else codes
    return np.asarray(code_values, dtype=np.float32)[codes]


def pack(codes, bits):
    """(..., n) codes -> (..., ceil(n*bits/8)) uint8, element 0 in the LSBs, little-endian bytes."""
    codes = np.asarray(codes, dtype=object)
    n = codes.shape[-1]
    nbytes = (n * bits + 7) // 8
    flat = codes.reshape(-1, n)
    out = np.zeros((flat.shape[0], nbytes), dtype=np.uint8)
    mask = (1 << bits) - 1
    for r, row in enumerate(flat):
        word = 0
        for i, c in enumerate(row):
            word |= (int(c) & mask) << (i * bits)
        out[r] = np.frombuffer(word.to_bytes(nbytes, "little"), dtype=np.uint8)
    return out.reshape(codes.shape[:-1] + (nbytes,))


def unpack(packed, bits, n):
    """Inverse of ``pack``: (..., nbytes) uint8 -> (..., n) codes (int64)."""
    packed = np.asarray(packed, dtype=np.uint8)
    flat = packed.reshape(-1, packed.shape[-1])
    out = np.zeros((flat.shape[0], n), dtype=np.int64)
    mask = (1 << bits) - 1
    for r, row in enumerate(flat):
        word = int.from_bytes(bytes(row), "little")
        for i in range(n):
            out[r, i] = (word >> (i * bits)) & mask
    return out.reshape(packed.shape[:-1] + (n,))
