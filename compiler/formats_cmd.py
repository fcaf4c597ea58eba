"""``minifinn formats``: describe number formats (what a user wants to know before picking one)."""

from compiler.errors import MinifinnError
from compiler.numerics import accumulator_bits, parse_format


def add_arguments(parser):
    parser.add_argument("formats", nargs="+", help='formats such as e3m2, fp:e4m3, int:4, uint:8, "FLOAT<3,2,3>"')
    parser.add_argument("--dot-length", type=int, default=512, help="dot-product length k for accumulator widths")
    parser.add_argument("--values", action="store_true", help="also list every representable value")


def describe(fmt, k):
    values = fmt.values()
    positive = values[values > 0]
    lines = [
        f"{fmt.name} ({fmt.qonnx_name}): {fmt.bits} bits, {len(values)} distinct values",
        f"  range [{values.min():g}, {values.max():g}], smallest positive {positive.min():g}",
        f"  integer domain: value = int * 2^{fmt.lsb_exponent}, |int| <= {fmt.max_int}",
        f"  accumulator for a length-{k} dot product with itself: {accumulator_bits(fmt, fmt, k)} bits (worst case)",
    ]
    return "\n".join(lines)


def run(args):
    for spec in args.formats:
        try:
            fmt = parse_format(spec)
        except MinifinnError as err:
            print(f"minifinn formats: {err}")
            return 2
        if fmt is None:
            print(f"{spec}: float32, not quantized")
            continue
        print(describe(fmt, args.dot_length))
        if args.values:
            print("  values: " + " ".join(f"{v:g}" for v in fmt.values()))
    return 0
