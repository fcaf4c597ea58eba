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

Modules: ``minifloat`` (``MinifloatFormat``), ``integer`` (``IntFormat``), ``parse`` (``parse_format``, the specs
users write), ``accumulator`` (exact accumulator widths), ``exact`` (Fractions and tie rules), ``common`` (limits,
checks). Import the names from ``compiler.numerics``.
"""

from compiler.numerics.accumulator import (
    accumulator_bits,
    accumulator_bits_exact,
    accumulator_bits_from_weights,
    magnitude_bits,
)
from compiler.numerics.common import HARDWARE_MAX_BITS, MAX_LISTED_BITS, check_scale
from compiler.numerics.exact import as_fraction, tie_rounds_up
from compiler.numerics.integer import IntFormat
from compiler.numerics.minifloat import OCP_MAX, MinifloatFormat
from compiler.numerics.parse import FORMAT_HELP, parse_format

__all__ = ["FORMAT_HELP", "HARDWARE_MAX_BITS", "MAX_LISTED_BITS", "OCP_MAX", "IntFormat", "MinifloatFormat",
           "accumulator_bits", "accumulator_bits_exact", "accumulator_bits_from_weights", "as_fraction",
           "check_scale", "magnitude_bits", "parse_format", "tie_rounds_up"]
