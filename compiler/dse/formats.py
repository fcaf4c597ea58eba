"""The number-format grid of the design-space exploration: every integer and minifloat format of 3 to 8 bits."""

from compiler.numerics import parse_format

INT_FORMATS = [f"int:{b}" for b in range(3, 9)]
MINIFLOAT_FORMATS = [f"fp:e{e}m{b - 1 - e}" for b in range(3, 9) for e in range(1, b - 1)]
ALL_FORMATS = INT_FORMATS + MINIFLOAT_FORMATS
QUICK_FORMATS = ["int:4", "fp:e2m1", "int:8", "fp:e4m3"]


def format_bits(spec):
    """Width in bits of a format spec ("int:4", "fp:e2m1", ...)."""
    return parse_format(spec).bits

#: the formats of ``make dse`` (chosen for its time budget, build_flows/dse.py): INT3-8 and, per width, the ExMy the
#: paper's discussion centres on (E2M1, E2M3/E3M2, E4M3 ...)
STUDY_FORMATS = INT_FORMATS + ["fp:e1m1", "fp:e2m1", "fp:e2m2", "fp:e3m1", "fp:e2m3", "fp:e3m2", "fp:e3m3",
                               "fp:e4m2", "fp:e4m3", "fp:e5m2"]
