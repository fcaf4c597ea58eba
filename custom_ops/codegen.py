"""Code generation helpers shared by the HLS and RTL backends: template rendering, C++ constants, stream words
(codes packed FINN-style, element 0 in the least significant bits) and hex memory files.

A stream carries the codes of its format (``MinifloatFormat.encode`` / ``IntFormat.encode``); integer formats wider
than 8 bits (accumulators) carry their two's-complement bit patterns as Python ints, so no width is lost.
"""

from pathlib import Path

import numpy as np

from compiler.numerics import IntFormat


def render_template(path, mapping):
    """The text of the template file ``path`` with every placeholder key of ``mapping`` (e.g. ``"$NAME$"``) replaced
    by ``str(value)``, in the mapping's order."""
    text = Path(path).read_text()
    for key, value in mapping.items():
        text = text.replace(key, str(value))
    return text


def ap_const(kind, width, value):
    """C++ constant of an ``ap_int``/``ap_uint`` (``kind``): a 64-bit literal when the value fits (thousands of
    string constructors make g++ slow, ~25 s for a large weight ROM), else the decimal string constructor (hex text
    like "0b.." would parse as a prefix)."""
    v = int(value)
    if kind == "ap_uint" and 0 <= v < 2**64:
        return f"{kind}<{width}>({v}ULL)"
    if kind == "ap_int" and -(2**63) < v < 2**63:
        return f"{kind}<{width}>({v}LL)"
    return f'{kind}<{width}>("{v}", 10)'


def const_array(kind, width, name, values):
    """``static const kind<width> name[n] = {...};`` of ``values`` (one zero entry for an empty list: C++ has no
    empty arrays)."""
    values = list(values) or [0]
    return (f"static const {kind}<{width}> {name}[{len(values)}] = {{"
            + ", ".join(ap_const(kind, width, v) for v in values) + "};")


def decode_table(fmt):
    """The signed integer-domain value (value / 2**lsb_exponent) of every code of a format of at most 8 bits, in code
    order: the decoder ROM of the cores that add or normalize codes (an integer code is its two's-complement value,
    also the one a narrow range excludes)."""
    codes = np.arange(2**fmt.bits)
    if isinstance(fmt, IntFormat):
        return [int(c) - (1 << fmt.bits) if fmt.signed and c >> (fmt.bits - 1) else int(c) for c in codes]
    return [int(v) for v in np.rint(np.ldexp(fmt.decode(codes).astype(np.float64), -fmt.lsb_exponent))]


def is_wide_int(fmt):
    """Integer formats wider than 8 bits: their stream elements are two's-complement patterns, not table codes."""
    return isinstance(fmt, IntFormat) and fmt.bits > 8


def codes_of(values, fmt):
    """Values of a format -> integer codes (Python ints, two's complement for wide integer formats)."""
    if is_wide_int(fmt):
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


def encode_stream(values, fmt, lanes):
    """Values of ``fmt`` -> stream words of ``lanes`` codes each (row-major order of the values)."""
    return pack_words(np.asarray(codes_of(np.asarray(values), fmt)).reshape(-1, lanes), fmt.bits)


def decode_stream(words, fmt, lanes):
    """Inverse of encode_stream: (len(words), lanes) values (signed integers for wide integer formats)."""
    if is_wide_int(fmt):
        return unpack_words(words, fmt.bits, lanes, signed=fmt.signed)
    return fmt.decode(unpack_words(words, fmt.bits, lanes).astype(np.int64))


def write_hex(path, words, bits):
    """One word per line, zero-padded hex of ``bits`` bits ($readmemh and the cppsim/rtlsim drivers read it)."""
    digits = max(1, (bits + 3) // 4)
    mask = (1 << bits) - 1
    with open(path, "w") as fh:
        for w in words:
            fh.write(f"{int(w) & mask:0{digits}x}\n")
