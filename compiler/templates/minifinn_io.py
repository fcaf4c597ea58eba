"""Host-side I/O of a minifinn accelerator: numbers <-> format codes <-> packed stream bytes (numpy only).

This file is copied next to the generated ``driver.py`` (``OUTPUT_DIR/driver/``) and must import on a board that
has neither minifinn, FINN nor qonnx: everything here is plain numpy.

Contracts
---------
* **Formats** (``Format.from_name``): ``FLOAT<e,m,b>`` minifloats (sign | e exponent bits | m mantissa bits, bias b,
  subnormals, no inf/NaN, saturating, round half to even -- minifinn's ``compiler.numerics.MinifloatFormat``) and
  ``INTn`` / ``UINTn`` integers (two's complement codes). ``quantize`` is the same float32 arithmetic as
  ``compiler.numerics`` (and so qonnx ``float_quant`` / ``int_quant``); ``encode`` maps representable values to
  the same codes as ``compiler.numerics`` ``encode`` (zero of either sign -> code 0) and rejects any other value;
  ``decode`` is its inverse (float32 values for minifloats, int64 for integers).
* **Packing** (``pack`` / ``unpack``): FINN's stream layout, i.e. ``finn.util.data_packing.
  finnpy_to_packed_bytearray(codes, UINT<bits>, reverse_inner=True, reverse_endian=True)``: the innermost (folded)
  axis of n codes is one stream word, element 0 in the least significant bits, the word zero-padded to whole bytes
  and stored little-endian (byte 0 = bits 0..7). Shapes: (..., n) codes <-> (..., ceil(n*bits/8)) uint8.
* **I/O dictionary** (``MinifinnIO``): FINN's ``io_shape_dict`` keys (``idt``, ``odt``, ``ishape_normal``,
  ``ishape_folded``, ``ishape_packed``, the ``o*`` counterparts, ``idma_names``, ``odma_names``, ``num_inputs``,
  ``num_outputs``), one list entry per accelerator input/output; dimension 0 of every shape is the batch and is
  replaced by the current batch size, as in FINN's driver. minifinn adds ``input_scales`` (host quantizer scale of
  each input, or null).
"""

import re

import numpy as np

__all__ = ["Format", "MinifinnIO", "pack", "unpack"]

_FLOAT = re.compile(r"^FLOAT<(\d+),(\d+),(-?\d+)>$")
_INT = re.compile(r"^(U?)INT(\d+)$")


def _dtype_name(name):
    """Accept ``FLOAT<3,2,3>``, ``DataType['FLOAT<3,2,3>']`` or a qonnx DataType (its ``.name``)."""
    name = getattr(name, "name", name)
    text = str(name).strip()
    m = re.match(r"^DataType\[['\"](.+)['\"]\]$", text)
    return m.group(1) if m else text


class Format:
    """A stream number format: ``kind`` ("minifloat" or "int"), ``bits`` per code and the format's parameters."""

    def __init__(self, name):
        self.name = _dtype_name(name)
        fm, im = _FLOAT.match(self.name), _INT.match(self.name)
        if fm:
            self.kind = "minifloat"
            self.exponent_bits, self.mantissa_bits, self.exponent_bias = (int(g) for g in fm.groups())
            if self.exponent_bits < 1 or self.mantissa_bits < 0:
                raise ValueError(f"{self.name}: a minifloat needs at least one exponent bit")
            self.bits = 1 + self.exponent_bits + self.mantissa_bits
            self.signed = True
            self.lsb_exponent = 1 - self.exponent_bias - self.mantissa_bits
            max_sig = 2 ** (self.mantissa_bits + 1) - 1
            self.max = float(np.ldexp(max_sig, 2**self.exponent_bits - 1 - self.exponent_bias - self.mantissa_bits))
        elif im:
            self.kind = "int"
            self.signed = im.group(1) == ""
            self.bits = int(im.group(2))
            if self.bits < 1 or self.bits > 62:
                raise ValueError(f"{self.name}: integer streams of 1..62 bits are supported")
            self.lsb_exponent = 0
            self.min_int = -(2 ** (self.bits - 1)) if self.signed else 0
            self.max_int = 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1
            self.max = float(self.max_int)
        else:
            raise ValueError(f"stream datatype {self.name!r} is not FLOAT<e,m,b>, INTn or UINTn; the minifinn driver "
                             "packs only minifloat and integer codes")

    @classmethod
    def from_name(cls, name):
        return cls(name)

    def __repr__(self):
        return f"Format({self.name!r})"

    # --- numbers -> values ------------------------------------------------------------------------------------------
    def quantize(self, x):
        """Float input -> nearest representable value (round half to even, saturating), float32 arithmetic of
        compiler.numerics ``quantize`` (scale 1)."""
        x = np.asarray(x, dtype=np.float32)
        if not np.all(np.isfinite(x)):
            raise ValueError("input holds inf or NaN; the formats have no encoding for them")
        if self.kind == "int":
            y = np.where(x > self.max_int, np.float32(self.max_int), x)
            y = np.where(y < self.min_int, np.float32(self.min_int), y)
            return np.round(y).astype(np.float32)
        eps = np.finfo(np.float32).tiny
        internal = np.floor(np.log2(np.abs(x) + eps)) - self.mantissa_bits
        internal = np.exp2(np.maximum(internal, np.float32(self.lsb_exponent)))
        q = internal * np.round(x / internal)
        maxv = np.float32(self.max)
        return np.clip(q, -maxv, maxv).astype(np.float32)

    # --- values <-> codes -------------------------------------------------------------------------------------------
    def code_values(self):
        """Value of every code (index = code), float64; minifloats only."""
        codes = np.arange(2**self.bits, dtype=np.int64)
        m = self.mantissa_bits
        s, e, f = codes >> (self.bits - 1), (codes >> m) & (2**self.exponent_bits - 1), codes & (2**m - 1)
        sig = f + np.where(e > 0, 2**m, 0)
        mag = np.ldexp(sig.astype(np.float64), np.maximum(e, 1) - 1 + self.lsb_exponent)
        return np.where(s == 1, -mag, mag)

    def encode(self, values):
        """Representable values -> codes (uint64); raises ValueError naming the first value that is not one."""
        v = np.asarray(values)
        if self.kind == "int":
            if np.issubdtype(v.dtype, np.integer):  # exact beyond float64's 53 bits (wide accumulators)
                v = v.astype(np.int64)
                bad = (v < self.min_int) | (v > self.max_int)
            else:
                v = v.astype(np.float64)
                bad = (v != np.round(v)) | (v < self.min_int) | (v > self.max_int) | ~np.isfinite(v)
            if np.any(bad):
                raise ValueError(f"{v[bad].ravel()[0].item()!r} is not a value of {self.name}; quantize the input first "
                                 "(input_kind='float')")
            return (v.astype(np.int64) & (2**self.bits - 1)).astype(np.uint64)
        v = v.astype(np.float64)
        table = self.code_values()
        order = np.argsort(table, kind="stable")  # -0.0 (code 2^(bits-1)) sorts after +0.0 (code 0)
        pos = np.clip(np.searchsorted(table[order], v, side="left"), 0, len(table) - 1)
        codes = order[pos]
        bad = table[codes] != v
        if np.any(bad):
            raise ValueError(f"{v[bad].ravel()[0].item()!r} is not a value of {self.name}; quantize the input first "
                             "(input_kind='float')")
        codes = np.where(v == 0, 0, codes)  # zero of either sign is code 0, as compiler.numerics encodes it
        return codes.astype(np.uint64)

    def decode(self, codes):
        """Codes -> values: float32 for minifloats, int64 (sign-extended when signed) for integers."""
        c = np.asarray(codes).astype(np.int64)
        if np.any((c < 0) | (c >= 2**self.bits)):
            raise ValueError(f"codes of {self.name} are {self.bits}-bit patterns in [0, {2**self.bits - 1}]")
        if self.kind == "int":
            return np.where(c > self.max_int, c - 2**self.bits, c) if self.signed else c
        return self.code_values()[c].astype(np.float32)


# --- FINN stream packing ----------------------------------------------------------------------------------------------
def pack(codes, bits):
    """(..., n) codes (non-negative integers < 2^bits) -> (..., ceil(n*bits/8)) uint8 in FINN's layout (see module
    docstring)."""
    c = np.asarray(codes)
    if c.ndim == 0:
        raise ValueError("pack needs at least one axis (the stream word)")
    c = c.astype(np.uint64)
    if bits < 64 and np.any(c >> np.uint64(bits)):
        raise ValueError(f"codes do not fit in {bits} bits")
    n = c.shape[-1]
    nbytes = (n * bits + 7) // 8
    shifts = np.arange(bits, dtype=np.uint64)
    bit_array = ((c[..., None] >> shifts) & np.uint64(1)).astype(np.uint8)  # (..., n, bits), LSB first
    bit_array = bit_array.reshape(c.shape[:-1] + (n * bits,))
    pad = nbytes * 8 - n * bits
    if pad:
        bit_array = np.concatenate([bit_array, np.zeros(c.shape[:-1] + (pad,), dtype=np.uint8)], axis=-1)
    return np.packbits(bit_array, axis=-1, bitorder="little")


def unpack(packed, bits, n):
    """Inverse of ``pack``: (..., nbytes) uint8 -> (..., n) codes (uint64)."""
    p = np.asarray(packed, dtype=np.uint8)
    if p.shape[-1] != (n * bits + 7) // 8:
        raise ValueError(f"a word of {n} codes of {bits} bits has {(n * bits + 7) // 8} bytes, got {p.shape[-1]}")
    bit_array = np.unpackbits(p, axis=-1, bitorder="little")[..., : n * bits]
    bit_array = bit_array.reshape(p.shape[:-1] + (n, bits)).astype(np.uint64)
    weights = np.uint64(1) << np.arange(bits, dtype=np.uint64)
    return (bit_array * weights).sum(axis=-1, dtype=np.uint64)


# --- FINN-style I/O of one accelerator ------------------------------------------------------------------------------
INPUT_KINDS = ("values", "float", "codes")
OUTPUT_KINDS = ("values", "codes")


class MinifinnIO:
    """The host half of the driver (no PYNQ): FINN's fold/pack/unpack/unfold plus minifloat encode/decode.

    ``io_shape_dict`` as described in the module docstring. Methods take ``ind`` (input/output index) like FINN's.
    """

    def __init__(self, io_shape_dict, batch_size=1):
        self._io = dict(io_shape_dict)
        for key in ("idt", "odt", "ishape_normal", "ishape_folded", "ishape_packed", "oshape_normal",
                    "oshape_folded", "oshape_packed"):
            if key not in self._io:
                raise ValueError(f"io_shape_dict lacks {key!r}")
        self._iformats = [Format(d) for d in self._io["idt"]]
        self._oformats = [Format(d) for d in self._io["odt"]]
        self._batch_size = int(batch_size)

    @property
    def io_shape_dict(self):
        return self._io

    @property
    def batch_size(self):
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value):
        self._batch_size = int(value)

    @property
    def num_inputs(self):
        return len(self._io["idt"])

    @property
    def num_outputs(self):
        return len(self._io["odt"])

    def idt(self, ind=0):
        return self._iformats[ind]

    def odt(self, ind=0):
        return self._oformats[ind]

    def _shape(self, key, ind, batch):
        ret = list(self._io[key][ind])
        ret[0] = self._batch_size if batch is None else batch
        return tuple(ret)

    def ishape_normal(self, ind=0, batch=None):
        return self._shape("ishape_normal", ind, batch)

    def oshape_normal(self, ind=0, batch=None):
        return self._shape("oshape_normal", ind, batch)

    def ishape_folded(self, ind=0, batch=None):
        return self._shape("ishape_folded", ind, batch)

    def oshape_folded(self, ind=0, batch=None):
        return self._shape("oshape_folded", ind, batch)

    def ishape_packed(self, ind=0, batch=None):
        return self._shape("ishape_packed", ind, batch)

    def oshape_packed(self, ind=0, batch=None):
        return self._shape("oshape_packed", ind, batch)

    # --- input side ---------------------------------------------------------------------------------------------------
    def encode_input(self, x, ind=0, input_kind="values", scale=None):
        """Input -> codes. ``input_kind``: "values" (values of the input format, e.g. the host quantizer's output),
        "float" (real numbers: quantized as ``quantize(x / scale)``, scale = ``scale`` or the recorded host
        quantizer scale ``input_scales[ind]``, else 1) or "codes" (already codes, checked for range)."""
        fmt = self.idt(ind)
        if input_kind == "codes":
            codes = np.asarray(x)
            if np.any(codes < 0) or np.any(codes >= 2**fmt.bits) or np.any(codes != np.round(codes)):
                raise ValueError(f"input codes must be integers in [0, 2^{fmt.bits})")
            return codes.astype(np.uint64)
        if input_kind == "float":
            if scale is None:
                scales = self._io.get("input_scales") or []
                scale = scales[ind] if ind < len(scales) and scales[ind] is not None else 1.0
            x = fmt.quantize(np.asarray(x, dtype=np.float32) / np.float32(scale))
        elif input_kind != "values":
            raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {input_kind!r}")
        return fmt.encode(x)

    def fold_input(self, ibuf_normal, ind=0):
        """Normal-shape codes -> folded shape (FINN's fold_input); the batch is taken from the array."""
        ibuf_normal = np.asarray(ibuf_normal)
        expected = self.ishape_normal(ind, batch=ibuf_normal.shape[0] if ibuf_normal.ndim else None)
        if ibuf_normal.shape != expected:
            raise ValueError(f"input {ind}: expected shape {expected} (batch first), got {ibuf_normal.shape}")
        return ibuf_normal.reshape(self.ishape_folded(ind, batch=ibuf_normal.shape[0]))

    def pack_input(self, ibuf_folded, ind=0):
        """Folded codes -> packed bytes (FINN's pack_input with the format's codes as UINT<bits>)."""
        return pack(ibuf_folded, self.idt(ind).bits)

    def prepare_input(self, x, ind=0, input_kind="values", scale=None):
        """encode_input -> fold_input -> pack_input."""
        return self.pack_input(self.fold_input(self.encode_input(x, ind, input_kind, scale), ind), ind)

    # --- output side --------------------------------------------------------------------------------------------------
    def unpack_output(self, obuf_packed, ind=0):
        """Packed bytes -> folded codes (FINN's unpack_output)."""
        return unpack(obuf_packed, self.odt(ind).bits, self._io["oshape_folded"][ind][-1])

    def unfold_output(self, obuf_folded, ind=0):
        """Folded -> normal shape (FINN's unfold_output); the batch is taken from the array."""
        obuf_folded = np.asarray(obuf_folded)
        return obuf_folded.reshape(self.oshape_normal(ind, batch=obuf_folded.shape[0]))

    def decode_output(self, codes, ind=0, output_kind="values"):
        """Codes -> values of the output format ("values") or the codes themselves ("codes")."""
        if output_kind == "codes":
            return np.asarray(codes)
        if output_kind != "values":
            raise ValueError(f"output_kind must be one of {OUTPUT_KINDS}, got {output_kind!r}")
        return self.odt(ind).decode(codes)

    def finish_output(self, obuf_packed, ind=0, output_kind="values"):
        """unpack_output -> unfold_output -> decode_output."""
        return self.decode_output(self.unfold_output(self.unpack_output(obuf_packed, ind), ind), ind, output_kind)
