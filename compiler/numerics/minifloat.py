"""Signed minifloats ExMy (``MinifloatFormat``), optionally with a reduced maximum (OCP FP8); the contract is in the
package docstring (``compiler.numerics``)."""

import math
import re

import numpy as np
from qonnx.core.datatype import DataType

from compiler.errors import FormatError
from compiler.numerics.common import (
    FLOAT32_MAX_EXP,
    HARDWARE_MAX_BITS,
    NUMBER_PATTERN,
    as_float32_finite,
    divide_by_scale,
    int_array,
    number_text,
)

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
        if top > FLOAT32_MAX_EXP or (top == FLOAT32_MAX_EXP and self.mantissa_bits > 23):
            raise FormatError(
                f"exponent_bias {self.exponent_bias} makes the maximum of E{self.exponent_bits}M{self.mantissa_bits} "
                f"2^{top} overflow float32; use a bias >= {2**self.exponent_bits - 1 - FLOAT32_MAX_EXP}"
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
        return f"{base}max{number_text(self.max)}" if self.reduced else base

    @property
    def container_qonnx_name(self):
        """``FLOAT<e,m,b>``: the qonnx type of the codes (the ExMy grid, without a reduced maximum)."""
        return f"FLOAT<{self.exponent_bits},{self.mantissa_bits},{self.exponent_bias}>"

    @property
    def qonnx_name(self):
        """``FLOAT<e,m,b>``, or ``FLOAT<e,m,b,max>`` with a reduced maximum (the name hardware ops' datatype
        attributes carry; ``compiler.qonnx_formats.qonnx_datatype`` maps it to its container's DataType)."""
        if self.reduced:
            return f"FLOAT<{self.exponent_bits},{self.mantissa_bits},{self.exponent_bias},{number_text(self.max)}>"
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
        match = re.fullmatch(r"\s*FLOAT<\s*(\d+)\s*,\s*(\d+)\s*(?:,\s*(-?\d+)\s*(?:,\s*(" + NUMBER_PATTERN + r")\s*)?)?>\s*",
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
        match = re.fullmatch(r"(?:fp:)?e(\d+)m(\d+)(?:b(-?\d+))?(?:max(" + NUMBER_PATTERN + r"))?", low)
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
        tail = f", max_value={number_text(self.max)}" if self.reduced else ""
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
        return int_array(sorted(set([-v for v in pos] + pos)))

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
        scale, xs = divide_by_scale(x, scale)
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
        v = as_float32_finite(values, "values to encode").astype(np.float64)
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
