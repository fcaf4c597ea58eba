"""Format specs as users write them (``'fp:e3m2'``, ``'ocp:e4m3'``, ``'int:4'``, ``'FLOAT<3,2,3>'``, ``'float'``)."""

import re

from compiler.errors import FormatError
from compiler.numerics.common import NUMBER_PATTERN
from compiler.numerics.integer import IntFormat
from compiler.numerics.minifloat import MinifloatFormat

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
    if re.fullmatch(r"(fp:)?e\d+m\d+(b-?\d+)?(max" + NUMBER_PATTERN + r")?", low) or low.startswith("ocp:"):
        return MinifloatFormat.parse(low)
    if re.fullmatch(r"u?int:?\d+n?", low):
        return IntFormat.parse(low)
    raise FormatError(f"unknown number format {spec!r}; accepted: {FORMAT_HELP}")
