"""Number formats of minifinn: minifloats (sign + ExMy) and integers. The single source of truth.

Minifloat contract (Brevitas ``float`` / QONNX ``FloatQuant`` defaults):

* a code is ``s | e (E bits) | f (M bits)``, the value is ``(-1)^s * 2^(max(e,1) - bias - M) * (f + [e>0] * 2^M)``;
* bias defaults to ``2^(E-1) - 1``; subnormals are kept; there are no inf/NaN encodings, the top exponent holds
  ordinary numbers, so ``max = (2 - 2^-M) * 2^(2^E - 1 - bias)``;
* quantization rounds half to even and saturates to +-max.

Reduced maximum (OCP FP8, a saturating quantizer with ``max_val`` below the full range): ``max_value`` is a value of
the ExMy grid; the format's values are the ExMy values of magnitude <= max_value, its codes those of ExMy (the codes
above it, OCP's inf/NaN encodings, are reserved and never produced), and quantization saturates to +-max_value after
rounding (qonnx ``float_quant`` clips to ``min(full max, max_val)``). OCP E4M3 (bias 7) has max 448 (S.1111.111 is
NaN), OCP E5M2 (bias 15) max 57344 (exponent 31 is inf/NaN); OCP FP6 E2M3 / E3M2 and FP4 E2M1 are full range.
Names: ``e4m3max448``; qonnx-style ``FLOAT<4,3,7,448>`` (the fourth field is the maximum; qonnx' own DataType has
no such field, so tensors are annotated with the container ``FLOAT<4,3,7>``: ``datatype``).

Integer domain: every code of a format is an integer times the format's LSB weight, ``value = int * 2^lsb_exponent``
(``lsb_exponent = 1 - bias - M`` for minifloats, 0 for integers). Products of two such ints are exact integers and
a dot product accumulates them exactly (a Kulisch accumulator), see ``accumulator_bits``.

``quantize`` reproduces qonnx's ``float_quant`` / ``int_quant`` operation for operation in float32 (qonnx is a numpy
port of Brevitas), so its results are bit-identical to both, non-finite inputs included: NaN quantizes to NaN in
both kinds of format; +-inf quantizes to NaN in a minifloat (qonnx' ``float_quant``: inf / inf inside the rounding)
and saturates to +-max in an integer format (``int_quant`` clips before rounding). No format encodes NaN or inf, so
``encode`` refuses them. Scales must be finite, positive, normal float32 numbers (``check_scale``), and for a
minifloat ``x / scale`` must stay finite for finite ``x``: anything else raises a ``FormatError`` instead of
returning NaN.

Widths: minifloats have at most ``HARDWARE_MAX_BITS`` bits, integers 2..32 bits; ``values()`` / ``int_values()``
list the values of formats of at most ``MAX_LISTED_BITS`` bits (an int32 has 2^32 values, 32 GiB as int64), wider
integers give their range with ``int_range()``.
"""

import math
import re
from fractions import Fraction

import numpy as np
from qonnx.core.datatype import DataType

from compiler.errors import FormatError, UnsupportedNodeError

HARDWARE_MAX_BITS = 8
#: widest format whose values ``values()`` / ``int_values()`` list (2^24 int64 values are 128 MiB)
MAX_LISTED_BITS = 24
_NUMBER = r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?"
_FLOAT32_MAX_EXP = 127  # largest finite float32 is (2 - 2^-23) * 2^127
_FLOAT32_TINY = float(np.finfo(np.float32).tiny)  # smallest normal float32, 2^-126


def check_scale(scale):
    """``scale`` as float32 if every element is a finite, positive, normal float32 number; else a FormatError saying
    which element is wrong and why (quantization divides by the scale: 0, a subnormal such as 1e-45, inf or NaN
    would turn finite inputs into inf or NaN)."""
    arr = np.asarray(scale, dtype=np.float32)
    flat = arr.ravel()
    for bad, why in ((~np.isfinite(flat), "is not finite"), (flat == 0, "is 0 (quantization divides by the scale)"),
                     (flat < 0, "is negative (quantizer scales are > 0)"),
                     ((flat > 0) & (flat < _FLOAT32_TINY), f"is subnormal in float32 (below {_FLOAT32_TINY:.3g}), "
                                                           "so x / scale overflows")):
        if np.any(bad):
            where = "" if arr.ndim == 0 else f" at index {int(np.flatnonzero(bad)[0])}"
            raise FormatError(f"scale {float(flat[bad][0]):g}{where} {why}; a scale must be a finite float32 "
                              f"number >= {_FLOAT32_TINY:.3g}")
    return arr


def _scaled(x, scale, overflow_error=True):
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


def _check_listable(fmt):
    if fmt.bits > MAX_LISTED_BITS:
        raise FormatError(f"{fmt.name} has 2^{fmt.bits} values; values() and int_values() list formats of at most "
                          f"{MAX_LISTED_BITS} bits; use int_range() for its range")


def _as_float32_finite(x, what="input"):
    arr = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        bad = arr[~np.isfinite(arr)].ravel()[0]
        raise FormatError(f"{what} contains {bad}: only finite numbers can be quantized or encoded")
    return arr


def _int_array(values):
    """int64 array when every value fits comfortably, else an object array of Python ints (exact)."""
    values = list(values)
    if all(-(2**62) < v < 2**62 for v in values):
        return np.array(values, dtype=np.int64)
    return np.array(values, dtype=object)


def _signed_width(lo, hi):
    """Smallest two's-complement width holding every integer in [lo, hi]."""
    lo, hi = int(lo), int(hi)
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def _number_text(x):
    """A float as the shortest text that reads back exactly: '448', '0.875'."""
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 2**53 else repr(x)


#: OCP formats with a reduced maximum (E, M) -> max; the other OCP minifloats (FP6 E2M3/E3M2, FP4 E2M1) are full range
OCP_MAX = {(4, 3): 448.0, (5, 2): 57344.0}


class MinifloatFormat:
    """Signed minifloat ExMy with bias, subnormals, no inf/NaN, saturating, round half to even; optionally a reduced
    maximum ``max_value`` (module docstring)."""

    is_minifloat = True

    def __init__(self, exponent_bits, mantissa_bits, exponent_bias=None, max_bits=HARDWARE_MAX_BITS,
                 max_value=None):
        if int(exponent_bits) != exponent_bits or exponent_bits < 1:
            raise FormatError(f"exponent_bits must be an integer >= 1, got {exponent_bits}")
        if int(mantissa_bits) != mantissa_bits or mantissa_bits < 0:
            raise FormatError(f"mantissa_bits must be an integer >= 0, got {mantissa_bits}")
        self.exponent_bits = int(exponent_bits)
        self.mantissa_bits = int(mantissa_bits)
        self.bits = 1 + self.exponent_bits + self.mantissa_bits
        if self.bits > max_bits:
            raise FormatError(
                f"E{self.exponent_bits}M{self.mantissa_bits} has {self.bits} bits; hardware formats have at most "
                f"{max_bits} bits (1 sign + E + M), e.g. e4m3, e3m2, e2m1"
            )
        default_bias = 2 ** (self.exponent_bits - 1) - 1
        bias = default_bias if exponent_bias is None else exponent_bias
        if int(bias) != bias:
            raise FormatError(f"exponent_bias must be an integer, got {exponent_bias}")
        self.exponent_bias = int(bias)
        top = 2**self.exponent_bits - 1 - self.exponent_bias
        if top > _FLOAT32_MAX_EXP or (top == _FLOAT32_MAX_EXP and self.mantissa_bits > 23):
            raise FormatError(
                f"exponent_bias {self.exponent_bias} makes the maximum of E{self.exponent_bits}M{self.mantissa_bits} "
                f"2^{top} overflow float32; use a bias >= {2**self.exponent_bits - 1 - _FLOAT32_MAX_EXP}"
            )
        if self.lsb_exponent < -149:
            raise FormatError(
                f"exponent_bias {self.exponent_bias} makes the smallest subnormal 2^{self.lsb_exponent} underflow "
                f"float32 (smallest is 2^-149); use a bias <= {1 - self.mantissa_bits + 149}"
            )
        self._max_int = self.full_max_int
        if max_value is not None:
            self._max_int = self._max_int_of(max_value)

    def _max_int_of(self, max_value):
        full = math.ldexp(self.full_max_int, self.lsb_exponent)
        mv = float(max_value)
        scaled = math.ldexp(mv, -self.lsb_exponent) if math.isfinite(mv) else math.nan
        base = f"E{self.exponent_bits}M{self.mantissa_bits} (bias {self.exponent_bias})"
        if not (0 < mv <= full) or scaled not in set(self._grid_ints()):
            raise FormatError(
                f"max_value {max_value!r} is not a positive value of {base} up to its full maximum {full!r}; "
                "a reduced maximum must be one of the format's values (e.g. 448 for OCP E4M3)"
            )
        return int(scaled)

    @classmethod
    def ocp(cls, exponent_bits, mantissa_bits):
        """The OCP minifloat ExMy (default bias): E4M3 max 448, E5M2 max 57344, FP6 / FP4 full range."""
        return cls(exponent_bits, mantissa_bits, max_value=OCP_MAX.get((int(exponent_bits), int(mantissa_bits))))

    # --- naming -------------------------------------------------------------------------------------------
    @property
    def default_bias(self):
        return 2 ** (self.exponent_bits - 1) - 1

    @property
    def reduced(self):
        """True when the maximum is below the ExMy grid's (codes above it are reserved)."""
        return self._max_int != self.full_max_int

    @property
    def name(self):
        base = f"e{self.exponent_bits}m{self.mantissa_bits}"
        base = base if self.exponent_bias == self.default_bias else f"{base}b{self.exponent_bias}"
        return f"{base}max{_number_text(self.max)}" if self.reduced else base

    @property
    def container_qonnx_name(self):
        """``FLOAT<e,m,b>``: the qonnx type of the codes (the ExMy grid, without a reduced maximum)."""
        return f"FLOAT<{self.exponent_bits},{self.mantissa_bits},{self.exponent_bias}>"

    @property
    def qonnx_name(self):
        """``FLOAT<e,m,b>``, or ``FLOAT<e,m,b,max>`` with a reduced maximum (the name hardware ops' datatype
        attributes carry; ``compiler.qonnx_formats.qonnx_datatype`` maps it to its container's DataType)."""
        if self.reduced:
            return f"FLOAT<{self.exponent_bits},{self.mantissa_bits},{self.exponent_bias},{_number_text(self.max)}>"
        return self.container_qonnx_name

    @property
    def datatype(self):
        """The qonnx ``DataType`` of the codes (the container ``FLOAT<e,m,b>``: qonnx types carry no reduced maximum).
        qonnx reads a bias of 0 as 'default', which is only right when the default is 0."""
        if self.exponent_bias == 0 and self.default_bias != 0:
            raise FormatError(
                f"{self.qonnx_name}: qonnx treats exponent bias 0 as the default bias {self.default_bias}, "
                "so this format has no faithful qonnx DataType"
            )
        return DataType[self.container_qonnx_name]

    @classmethod
    def from_qonnx(cls, name):
        match = re.fullmatch(r"\s*FLOAT<\s*(\d+)\s*,\s*(\d+)\s*(?:,\s*(-?\d+)\s*(?:,\s*(" + _NUMBER + r")\s*)?)?>\s*",
                             str(name))
        if not match:
            raise FormatError(f"{name!r} is not a qonnx minifloat type name; expected e.g. 'FLOAT<3,2,3>' or "
                              "'FLOAT<4,3,7,448>' (with a reduced maximum)")
        e, m, b, mx = match.groups()
        return cls(int(e), int(m), None if b is None else int(b), max_value=None if mx is None else float(mx))

    @classmethod
    def parse(cls, text):
        low = str(text).strip().lower()
        if low.startswith("ocp:"):
            match = re.fullmatch(r"ocp:e(\d+)m(\d+)", low)
            if not match:
                raise FormatError(f"{text!r} is not an OCP minifloat name; expected e.g. 'ocp:e4m3' or 'ocp:e5m2'")
            return cls.ocp(int(match.group(1)), int(match.group(2)))
        match = re.fullmatch(r"(?:fp:)?e(\d+)m(\d+)(?:b(-?\d+))?(?:max(" + _NUMBER + r"))?", low)
        if not match:
            raise FormatError(f"{text!r} is not a minifloat name; expected e.g. 'e3m2', 'fp:e4m3', 'e4m3b8', "
                              "'e4m3max448' or 'ocp:e4m3'")
        e, m, b, mx = match.groups()
        return cls(int(e), int(m), None if b is None else int(b), max_value=None if mx is None else float(mx))

    def __eq__(self, other):
        return isinstance(other, MinifloatFormat) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def _key(self):
        return ("fp", self.exponent_bits, self.mantissa_bits, self.exponent_bias, self._max_int)

    def __repr__(self):
        tail = f", max_value={_number_text(self.max)}" if self.reduced else ""
        return f"MinifloatFormat({self.exponent_bits}, {self.mantissa_bits}, exponent_bias={self.exponent_bias}{tail})"

    # --- range ---------------------------------------------------------------------------------------------
    @property
    def lsb_exponent(self):
        return 1 - self.exponent_bias - self.mantissa_bits

    @property
    def full_max_int(self):
        """Largest |value| of the ExMy grid in the integer domain: (2^(M+1) - 1) * 2^(2^E - 2)."""
        return (2 ** (self.mantissa_bits + 1) - 1) * 2 ** (2**self.exponent_bits - 2)

    @property
    def max_int(self):
        """Largest |value| of the format in the integer domain (``full_max_int`` unless the maximum is reduced)."""
        return self._max_int

    @property
    def max_code(self):
        """Code (sign 0) of the largest value: the largest magnitude code a quantizer produces."""
        return self._grid_ints().index(self._max_int)

    @property
    def max(self):
        return float(np.float32(math.ldexp(self.max_int, self.lsb_exponent)))

    @property
    def min_subnormal(self):
        return float(np.float32(math.ldexp(1, self.lsb_exponent)))

    def _grid_ints(self):
        """Integer-domain values of every ExMy code with sign 0, in code order (ascending)."""
        m = self.mantissa_bits
        out = []
        for e in range(2**self.exponent_bits):
            for f in range(2**m):
                out.append((f + (2**m if e > 0 else 0)) << (max(e, 1) - 1))
        return out

    def int_range(self):
        """(smallest, largest) integer-domain value."""
        return -self.max_int, self.max_int

    def _positive_ints(self):
        """Integer-domain values of the format's codes with sign 0 (those up to the maximum), ascending."""
        return [v for v in self._grid_ints() if v <= self._max_int]

    def int_values(self):
        pos = self._positive_ints()
        return _int_array(sorted(set([-v for v in pos] + pos)))

    def values(self):
        return np.array([math.ldexp(v, self.lsb_exponent) for v in self.int_values()], dtype=np.float32)

    # --- quantization --------------------------------------------------------------------------------------
    def quantize(self, x, scale=1.0):
        """scale * q(x / scale) with q = round half to even onto the format, saturating; float32 in and out.

        The float32 operations are those of qonnx ``float_quant`` (has_subnormal, no inf/NaN, saturating), so the
        results are bit-identical to qonnx and to Brevitas; NaN and +-inf inputs give NaN as there. An invalid scale
        (``check_scale``) or an overflowing ``x / scale`` raises a FormatError.
        """
        x = np.asarray(x, dtype=np.float32)
        scale, xs = _scaled(x, scale)
        eps = np.finfo(np.float32).tiny
        with np.errstate(invalid="ignore"):  # inf / inf of an infinite input: NaN, as in qonnx
            internal = np.floor(np.log2(np.abs(xs) + eps)) - self.mantissa_bits
            internal = np.maximum(internal, np.float32(self.lsb_exponent))
            internal = np.exp2(internal)
            q = internal * np.round(xs / internal)
        maxv = np.float32(self.max)
        q = np.clip(q, -maxv, maxv)
        return (q * scale).astype(np.float32)

    # --- codes ---------------------------------------------------------------------------------------------
    def encode(self, values):
        """Representable values -> uint8 codes ``s|e|f``. Zero (either sign) encodes as +0."""
        v = _as_float32_finite(values, "values to encode").astype(np.float64)
        a = np.abs(v)
        m, bias = self.mantissa_bits, self.exponent_bias
        _, exp = np.frexp(a)
        unbiased = exp.astype(np.int64) - 1  # a in [2^u, 2^(u+1))
        normal = (a > 0) & (unbiased >= 1 - bias)
        e_field = np.where(normal, unbiased + bias, 0)
        sig = np.where(normal, np.ldexp(a, (m - unbiased).astype(np.int64)) - 2**m, np.ldexp(a, -self.lsb_exponent))
        bad = (sig != np.floor(sig)) | (sig < 0) | (sig >= 2**m) | (e_field > 2**self.exponent_bits - 1) | \
            (a > self.max)
        if np.any(bad):
            first = v[bad].ravel()[0]
            raise FormatError(f"{first!r} is not representable in {self.name}; quantize() the values first")
        sign = (v < 0).astype(np.int64)
        codes = (sign << (self.bits - 1)) | (e_field.astype(np.int64) << m) | sig.astype(np.int64)
        return codes.astype(np.uint8)

    def _fields(self, codes):
        c = np.asarray(codes).astype(np.int64)
        if np.any((c < 0) | (c >= 2**self.bits)):
            raise FormatError(f"codes of {self.name} are {self.bits}-bit patterns in [0, {2**self.bits - 1}]")
        m = self.mantissa_bits
        return (c >> (self.bits - 1)) & 1, (c >> m) & (2**self.exponent_bits - 1), c & (2**m - 1)

    def decode(self, codes):
        """Codes -> values. Every code of the ExMy grid decodes (a reduced maximum's reserved codes to their grid
        values: decoder tables span the whole code space; no quantizer produces them)."""
        s, e, f = self._fields(codes)
        sig = f + np.where(e > 0, 2**self.mantissa_bits, 0)
        mag = np.ldexp(sig.astype(np.float64), (np.maximum(e, 1) - 1 + self.lsb_exponent).astype(np.int64))
        return np.where(s == 1, -mag, mag).astype(np.float32)

    def to_int(self, codes):
        """codes -> (signed integer significands, lsb_exponent) with value = int * 2^lsb_exponent."""
        s, e, f = self._fields(codes)
        sig = f + np.where(e > 0, 2**self.mantissa_bits, 0)
        shift = np.maximum(e, 1) - 1
        if self.max_int < 2**62:
            mag = sig << shift
            return np.where(s == 1, -mag, mag).astype(np.int64), self.lsb_exponent
        flat = [(-1 if si else 1) * (int(g) << int(h)) for si, g, h in zip(s.ravel(), sig.ravel(), shift.ravel())]
        return np.array(flat, dtype=object).reshape(np.shape(codes)), self.lsb_exponent


class IntFormat:
    """Two's-complement (or unsigned) integer of ``bits`` bits; ``narrow`` drops the most negative value."""

    is_minifloat = False
    lsb_exponent = 0

    def __init__(self, bits, signed=True, narrow=False, max_bits=32):
        if int(bits) != bits or bits < 2 or bits > max_bits:
            raise FormatError(f"integer formats have 2..{max_bits} bits, got {bits}")
        self.bits = int(bits)
        self.signed = bool(signed)
        self.narrow = bool(narrow)
        if self.narrow and not self.signed:
            raise FormatError("narrow range applies to signed integers only (it drops -2^(bits-1))")

    @property
    def min_int(self):
        if not self.signed:
            return 0
        return -(2 ** (self.bits - 1)) + (1 if self.narrow else 0)

    @property
    def max_int_value(self):
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1

    @property
    def max_int(self):
        return max(abs(self.min_int), self.max_int_value)

    @property
    def max(self):
        return float(self.max_int_value)

    @property
    def min_subnormal(self):
        return 1.0

    @property
    def name(self):
        return ("int" if self.signed else "uint") + str(self.bits) + ("n" if self.narrow else "")

    @property
    def qonnx_name(self):
        return ("INT" if self.signed else "UINT") + str(self.bits)

    @property
    def datatype(self):
        return DataType[self.qonnx_name]

    @classmethod
    def from_qonnx(cls, name):
        match = re.fullmatch(r"\s*(U?)INT(\d+)\s*", str(name))
        if not match:
            raise FormatError(f"{name!r} is not a qonnx integer type name; expected e.g. 'INT4' or 'UINT8'")
        return cls(int(match.group(2)), signed=not match.group(1))

    @classmethod
    def parse(cls, text):
        match = re.fullmatch(r"\s*(u?)int:?(\d+)(n?)\s*", str(text).lower())
        if not match:
            raise FormatError(f"{text!r} is not an integer format; expected e.g. 'int4', 'int:4', 'uint8', 'int8n'")
        return cls(int(match.group(2)), signed=not match.group(1), narrow=bool(match.group(3)))

    def __eq__(self, other):
        return isinstance(other, IntFormat) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def _key(self):
        return ("int", self.bits, self.signed, self.narrow)

    def __repr__(self):
        return f"IntFormat({self.bits}, signed={self.signed}, narrow={self.narrow})"

    def int_range(self):
        """(smallest, largest) integer value."""
        return self.min_int, self.max_int_value

    def int_values(self):
        _check_listable(self)
        return np.arange(self.min_int, self.max_int_value + 1, dtype=np.int64)

    def values(self):
        return self.int_values().astype(np.float32)

    def quantize(self, x, scale=1.0):
        """scale * round_half_even(clip(x / scale)): the float32 operations of qonnx ``int_quant`` (zero point 0);
        NaN stays NaN, +-inf (and an overflowing ``x / scale``) saturates to +-max * scale as there. An invalid scale
        (``check_scale``) raises a FormatError."""
        x = np.asarray(x, dtype=np.float32)
        scale, y = _scaled(x, scale, overflow_error=False)
        y = np.where(y > self.max_int_value, np.float32(self.max_int_value), y)
        y = np.where(y < self.min_int, np.float32(self.min_int), y)
        return (np.round(y) * scale).astype(np.float32)

    def encode(self, values):
        v = _as_float32_finite(values, "values to encode")
        bad = (v != np.round(v)) | (v < self.min_int) | (v > self.max_int_value)
        if np.any(bad):
            raise FormatError(f"{v[bad].ravel()[0]!r} is not representable in {self.name}; quantize() it first")
        return (v.astype(np.int64) & (2**self.bits - 1)).astype(np.uint8 if self.bits <= 8 else np.uint32)

    def _ints(self, codes):
        c = np.asarray(codes).astype(np.int64)
        if np.any((c < 0) | (c >= 2**self.bits)):
            raise FormatError(f"codes of {self.name} are {self.bits}-bit patterns in [0, {2**self.bits - 1}]")
        if self.signed:
            c = np.where(c >= 2 ** (self.bits - 1), c - 2**self.bits, c)
        if np.any(c < self.min_int):
            raise FormatError(f"code {-(2 ** (self.bits - 1))} is excluded by the narrow range of {self.name}")
        return c

    def decode(self, codes):
        return self._ints(codes).astype(np.float32)

    def to_int(self, codes):
        return self._ints(codes), 0


FORMAT_HELP = ("'fp:e3m2' (or 'e3m2'), 'ocp:e4m3' / 'ocp:e5m2' (or 'e4m3max448'), 'int:4' (or 'int4'), 'uint:4', "
               "'FLOAT<3,2,3>', 'FLOAT<4,3,7,448>', 'INT4', or 'float' (unquantized)")


def parse_format(spec):
    """Parse a format spec; returns a MinifloatFormat, an IntFormat, or None for 'float'/'fp32'."""
    if isinstance(spec, (MinifloatFormat, IntFormat)):
        return spec
    text = str(spec).strip()
    low = text.lower()
    if low in ("float", "fp32", "float32", "none"):
        return None
    if low.startswith("float<"):
        return MinifloatFormat.from_qonnx(text.upper())
    if re.fullmatch(r"(fp:)?e\d+m\d+(b-?\d+)?(max" + _NUMBER + r")?", low) or low.startswith("ocp:"):
        return MinifloatFormat.parse(low)
    if re.fullmatch(r"u?int:?\d+n?", low):
        return IntFormat.parse(low)
    raise FormatError(f"unknown number format {spec!r}; accepted: {FORMAT_HELP}")


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
    return _signed_width(k * min(prods), k * max(prods))


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
    return _signed_width(min(int(x) for x in lo), max(int(x) for x in hi))
