"""``minifinn formats``: describe number formats (what a user wants to know before picking one).

The format specs and flags are checked before anything is printed; every problem is reported (on stderr, exit code
2). Integer formats have 2..32 bits; ``--values`` lists formats of at most ``MAX_VALUES_BITS`` bits, and describing
a wide integer never enumerates its values (an int32 has 2^32 of them).
"""

import sys

from compiler.errors import MinifinnError
from compiler.numerics import accumulator_bits, parse_format

#: widest format whose values --values prints (65,536 numbers)
MAX_VALUES_BITS = 16


def add_arguments(parser):
    parser.add_argument("formats", nargs="+", help='formats such as e3m2, fp:e4m3, int:4, uint:8, "FLOAT<3,2,3>"')
    parser.add_argument("--dot-length", type=int, default=512, help="dot-product length k for accumulator widths")
    parser.add_argument("--values", action="store_true",
                        help=f"also list every representable value (formats of at most {MAX_VALUES_BITS} bits)")


def _value_count(fmt):
    lo, hi = fmt.int_range()
    return len(fmt.values()) if fmt.is_minifloat else hi - lo + 1


def describe(fmt, k):
    if fmt.is_minifloat:
        lo, hi, smallest = (f"{v:g}" for v in (-fmt.max, fmt.max, fmt.min_subnormal))
    else:
        (lo, hi), smallest = fmt.int_range(), 1
    lines = [
        f"{fmt.name} ({fmt.qonnx_name}): {fmt.bits} bits, {_value_count(fmt)} distinct values",
        f"  range [{lo}, {hi}], smallest positive {smallest}",
        f"  integer domain: value = int * 2^{fmt.lsb_exponent}, |int| <= {fmt.max_int}",
        f"  accumulator for a length-{k} dot product with itself: {accumulator_bits(fmt, fmt, k)} bits (worst case)",
    ]
    return "\n".join(lines)


def check(args):
    """(parsed formats as (spec, format or None), problems): every spec and flag checked."""
    problems, parsed = [], []
    if args.dot_length < 1:
        problems.append(f"--dot-length must be >= 1 (the length k of the dot product), got {args.dot_length}")
    for spec in args.formats:
        try:
            parsed.append((spec, parse_format(spec)))
        except MinifinnError as err:
            problems.append(str(err) if repr(spec) in str(err) else f"{spec!r}: {err}")
    if args.values:
        problems += [f"--values: {fmt.name} has {_value_count(fmt)} values; --values lists formats of at most "
                     f"{MAX_VALUES_BITS} bits" for _, fmt in parsed if fmt is not None and fmt.bits > MAX_VALUES_BITS]
    return parsed, problems


def run(args):
    parsed, problems = check(args)
    if problems:
        for problem in problems:
            print(f"minifinn formats: {problem}", file=sys.stderr)
        return 2
    for spec, fmt in parsed:
        if fmt is None:
            print(f"{spec}: float32, not quantized")
            continue
        print(describe(fmt, args.dot_length))
        if args.values:
            print("  values: " + " ".join(f"{v:g}" for v in fmt.values()))
    return 0
