"""Two's-complement and unsigned integer formats (``IntFormat``); codes are the integers themselves."""

import re

import numpy as np
from qonnx.core.datatype import DataType

from compiler.errors import FormatError
from compiler.numerics.common import as_float32_finite, check_listable, divide_by_scale


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
        check_listable(self)
        return np.arange(self.min_int, self.max_int_value + 1, dtype=np.int64)

    def values(self):
        return self.int_values().astype(np.float32)

    def quantize(self, x, scale=1.0):
        """scale * round_half_even(clip(x / scale)): the float32 operations of qonnx ``int_quant`` (zero point 0);
        NaN stays NaN, +-inf (and an overflowing ``x / scale``) saturates to +-max * scale as there. An invalid scale
        (``check_scale``) raises a FormatError."""
        x = np.asarray(x, dtype=np.float32)
        scale, y = divide_by_scale(x, scale, overflow_error=False)
        y = np.where(y > self.max_int_value, np.float32(self.max_int_value), y)
        y = np.where(y < self.min_int, np.float32(self.min_int), y)
        return (np.round(y) * scale).astype(np.float32)

    def encode(self, values):
        v = as_float32_finite(values, "values to encode")
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
