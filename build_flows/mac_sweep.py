"""MAC cost study: synthesize minifloat and integer MACs / dot products with Yosys ``synth_xilinx`` (xc7).

    python build_flows/mac_sweep.py --quick --output-dir out/mac
    minifinn mac-sweep --output-dir docs/results/mac_sweep --jobs 1

Configurations (weight format x activation format x unit):
- formats: INT3 ... INT8 and every ExMy with 3 <= 1+E+M <= 8, E, M >= 1 (21 minifloat formats); equal weight and
  activation formats, plus the mixed pairs in ``MIXED_PAIRS``;
- units: ``mac`` = one multiplier + Kulisch accumulator (``mf_mac``), ``dotp8`` / ``dotp16`` = SIMD-wide dot product
  with adder tree + accumulator (``mf_dotp``), from the MAC library ``custom_ops/mac/*.v``;
- accumulator width: worst case for a dot product of length ``k`` (``--k``, default 512) from
  ``compiler.numerics.accumulator_bits`` (integer: r_a + r_b + ceil(log2 k) + 1; minifloat:
  2^E_a + M_a + 2^E_b + M_b + ceil(log2 k) - 1). The same ``k`` is used for all three units so that they differ only
  in parallelism.
Multipliers are mapped to LUTs and carry chains (``-nodsp``; ``--dsp`` lets Yosys use DSP48E1s), since small-operand
MACs on FPGAs are LUT-based and the study compares LUT cost.

Outputs in ``--output-dir``: ``mac_costs.csv`` (one row per configuration), ``mac_costs.png`` (LUTs vs operand bits,
and the minifloat/int LUT ratio per bit width) and ``summary.txt`` (the printed comparison with the paper's finding
that minifloat MACs cost 20-180 % more than integer MACs of the same operand size).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # allow `python build_flows/mac_sweep.py` without installation
    sys.path.insert(0, str(REPO))

from matplotlib.figure import Figure  # noqa: E402

from compiler.errors import MinifinnError  # noqa: E402
from compiler.numerics import IntFormat, MinifloatFormat, accumulator_bits, parse_format  # noqa: E402
from compiler.synth import SynthJob, synthesize_many  # noqa: E402
from custom_ops.mac import operand_params, verilog_sources  # noqa: E402

MAC_DIR = REPO / "custom_ops" / "mac"
UNITS = {"mac": 1, "dotp8": 8, "dotp16": 16}  # unit name -> SIMD lanes
MIXED_PAIRS = [("e2m1", "e3m2"), ("int4", "e4m3"), ("e4m3", "int8"), ("int4", "int8"), ("e2m1", "int4")]
QUICK_FORMATS = ["int4", "e2m1", "int8", "e4m3"]
QUICK_UNITS = ("mac", "dotp8")
QUICK_MIXED = [("int4", "e4m3")]
PAPER_RANGE = (20.0, 180.0)  # % more LUTs for minifloat MACs vs integer MACs of the same operand size (TCAD 2025)

CSV_COLUMNS = [
    "unit", "simd", "weight_fmt", "act_fmt", "weight_bits", "act_bits", "bits", "kind", "k", "acc_bits",
    "LUT", "FF", "CARRY", "DSP", "MUXF7", "MUXF8", "LUT_total", "LUT_per_lane", "lut_ratio_vs_int",
    "lut_by_size", "synth_s", "cached",
]


# ----------------------------------------------------------------------------------------------------------------------
# formats


def all_format_names(min_bits: int = 3, max_bits: int = 8) -> list[str]:
    """INT<b> and e<E>m<M> names for min_bits <= total bits <= max_bits, ordered by bits then E."""
    names = []
    for bits in range(min_bits, max_bits + 1):
        names.append(f"int{bits}")
        for e in range(1, bits - 1):
            names.append(f"e{e}m{bits - 1 - e}")
    return names


def parse_name(name: str):
    """'int4' | 'e3m2' (also 'int:4', 'fp:e3m2') -> numerics format object."""
    n = name.strip().lower()
    if n.startswith("int") and n[3:].isdigit():
        return IntFormat(int(n[3:]))
    if n.startswith("e") and "m" in n and ":" not in n:
        return MinifloatFormat.parse(n)
    fmt = parse_format(n)
    if fmt is None:
        raise MinifinnError(f"format {name!r}: the MAC sweep needs a quantized format (intN or eXmY), not float")
    return fmt


def fmt_label(fmt) -> str:
    """Short label of a numerics format: INT4, E3M2."""
    if hasattr(fmt, "exponent_bits"):
        return f"E{fmt.exponent_bits}M{fmt.mantissa_bits}"
    return f"INT{fmt.bits}"


def is_minifloat(fmt) -> bool:
    return hasattr(fmt, "exponent_bits")


def configurations(quick: bool = False, units=None, k: int = 512, formats=None, mixed=None):
    """The sweep's configurations as dicts (weight/act formats, unit, SIMD, accumulator bits).

    Equal weight/activation formats for every name in ``formats`` (default: all, or ``QUICK_FORMATS``), plus the
    mixed (weight, activation) pairs in ``mixed`` (default: ``MIXED_PAIRS``, ``QUICK_MIXED`` when quick, none when
    ``formats`` is given).
    """
    names = list(formats or (QUICK_FORMATS if quick else all_format_names()))
    if mixed is None:  # explicit --formats: only those (equal pairs)
        mixed = [] if formats else (QUICK_MIXED if quick else MIXED_PAIRS)
    pairs = [(n, n) for n in names] + [tuple(p) for p in mixed]
    units = list(units or (QUICK_UNITS if quick else UNITS))
    for u in units:
        if u not in UNITS:
            raise MinifinnError(f"unknown unit {u!r}; choose from {', '.join(UNITS)}")
    out = []
    for unit in units:
        for wn, an in pairs:
            wf, af = parse_name(wn), parse_name(an)
            out.append(dict(
                unit=unit, simd=UNITS[unit], wfmt=wf, afmt=af, weight_fmt=fmt_label(wf), act_fmt=fmt_label(af),
                k=k, acc_bits=int(accumulator_bits(wf, af, k)),
            ))
    return out


def synth_job(cfg, dsp=False):
    """The Yosys job of one configuration: mf_mac (unit "mac") or mf_dotp with SIMD lanes."""
    (ab, ae, asg), (bb, be, bsg) = operand_params(cfg["afmt"]), operand_params(cfg["wfmt"])
    params = dict(A_BITS=ab, A_E=ae, A_SIGNED=asg, B_BITS=bb, B_E=be, B_SIGNED=bsg, ACC_BITS=cfg["acc_bits"])
    top = "mf_mac"
    if cfg["unit"] != "mac":
        params["SIMD"] = cfg["simd"]
        top = "mf_dotp"
    return SynthJob(tuple(str(p) for p in verilog_sources()), top, tuple(sorted(params.items())),
                    (("dsp", dsp),))


def run_sweep(configs, jobs=1, dsp=False, progress=True):
    """Synthesize every configuration; returns CSV rows (dicts with ``CSV_COLUMNS``)."""
    results = synthesize_many([synth_job(c, dsp) for c in configs], n_jobs=jobs, progress=progress,
                              desc="mac-sweep")
    rows = []
    for cfg, res in zip(configs, results):
        wf, af = cfg["wfmt"], cfg["afmt"]
        rows.append(dict(
            unit=cfg["unit"], simd=cfg["simd"], weight_fmt=cfg["weight_fmt"], act_fmt=cfg["act_fmt"],
            weight_bits=wf.bits, act_bits=af.bits, bits=max(wf.bits, af.bits),
            kind=_kind(wf, af), k=cfg["k"], acc_bits=cfg["acc_bits"],
            LUT=res.lut, FF=res.ff, CARRY=res.carry, DSP=res.dsp, MUXF7=res.muxf7, MUXF8=res.muxf8,
            LUT_total=res.lut_total, LUT_per_lane=round(res.lut / cfg["simd"], 2), lut_ratio_vs_int="",
            lut_by_size=" ".join(f"{k}:{v}" for k, v in sorted(res.lut_by_size.items())),
            synth_s=round(res.runtime_s, 2), cached=res.cached,
        ))
    _add_int_ratios(rows)
    return rows


def _kind(wf, af):
    kinds = {is_minifloat(wf), is_minifloat(af)}
    return "minifloat" if kinds == {True} else ("int" if kinds == {False} else "mixed")


def _add_int_ratios(rows):
    """For equal-format rows: LUT ratio to the integer format of the same bit width and unit."""
    ints = {(r["unit"], r["bits"]): r["LUT"] for r in rows if r["kind"] == "int" and r["weight_fmt"] == r["act_fmt"]}
    for r in rows:
        base = ints.get((r["unit"], r["bits"]))
        if base and r["weight_fmt"] == r["act_fmt"]:
            r["lut_ratio_vs_int"] = round(r["LUT"] / base, 3)


def write_csv(rows, path):
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def summarize(rows):
    """Text comparing minifloat and integer LUTs per bit width and unit with the paper's 20-180 % range."""
    lines = [f"Minifloat vs integer LUTs (same operand bits, same unit); paper: +{PAPER_RANGE[0]:.0f}..+"
             f"{PAPER_RANGE[1]:.0f} %"]
    for unit in UNITS:
        sel = [r for r in rows if r["unit"] == unit and r["kind"] == "minifloat" and r["lut_ratio_vs_int"] != ""]
        if not sel:
            continue
        lines.append(f"  {unit}:")
        for bits in sorted({r["bits"] for r in sel}):
            rs = sorted((r for r in sel if r["bits"] == bits), key=lambda r: r["lut_ratio_vs_int"])
            best, worst = rs[0], rs[-1]
            lines.append(
                f"    {bits} bits: {100 * (best['lut_ratio_vs_int'] - 1):+.0f} % ({best['weight_fmt']}) .. "
                f"{100 * (worst['lut_ratio_vs_int'] - 1):+.0f} % ({worst['weight_fmt']}); accumulator "
                f"{min(r['acc_bits'] for r in rs)}..{max(r['acc_bits'] for r in rs)} bits vs int "
                f"{next(r['acc_bits'] for r in rows if r['unit'] == unit and r['kind'] == 'int' and r['bits'] == bits)}"
            )
    return "\n".join(lines)


def plot(rows, path):
    """LUTs vs operand bits and the minifloat / INT LUT ratio per unit, as a PNG at ``path`` (matplotlib's object
    API: no pyplot state, no global backend)."""
    units = [u for u in UNITS if any(r["unit"] == u for r in rows)]
    fig = Figure(figsize=(5 * len(units), 8))
    axes = fig.subplots(2, len(units), squeeze=False)
    for col, unit in enumerate(units):
        ax, ax_ratio = axes[0][col], axes[1][col]
        eq = [r for r in rows if r["unit"] == unit and r["weight_fmt"] == r["act_fmt"]]
        ints = sorted((r for r in eq if r["kind"] == "int"), key=lambda r: r["bits"])
        ax.plot([r["bits"] for r in ints], [r["LUT"] for r in ints], "k-o", label="INT")
        for e in sorted({int(r["weight_fmt"][1]) for r in eq if r["kind"] == "minifloat"}):
            fp = sorted((r for r in eq if r["kind"] == "minifloat" and int(r["weight_fmt"][1]) == e),
                        key=lambda r: r["bits"])
            ax.plot([r["bits"] for r in fp], [r["LUT"] for r in fp], "--s", label=f"E{e}My")
            ax_ratio.plot([r["bits"] for r in fp if r["lut_ratio_vs_int"] != ""],
                          [r["lut_ratio_vs_int"] for r in fp if r["lut_ratio_vs_int"] != ""], "--s", label=f"E{e}My")
        ax.set(title=f"{unit}: LUTs (Yosys synth_xilinx, xc7)", xlabel="operand bits", ylabel="LUT", yscale="log")
        ax.legend(fontsize=7)
        ax_ratio.axhspan(1 + PAPER_RANGE[0] / 100, 1 + PAPER_RANGE[1] / 100, color="grey", alpha=0.2,
                         label="paper: +20..180 %")
        ax_ratio.axhline(1.0, color="k", lw=0.8)
        ax_ratio.set(title=f"{unit}: minifloat / INT LUTs, same bits", xlabel="operand bits", ylabel="ratio")
        ax_ratio.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def build_parser():
    parser = argparse.ArgumentParser(prog="minifinn mac-sweep", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small subset (a few formats, mac and dotp8)")
    parser.add_argument("--output-dir", default="out/mac_sweep", help="where mac_costs.csv/.png go")
    parser.add_argument("--jobs", type=int, default=1, help="parallel Yosys processes")
    parser.add_argument("--k", type=int, default=512, help="dot-product length that sizes the accumulator")
    parser.add_argument("--units", nargs="+", choices=list(UNITS), help="units to synthesize (default: all)")
    parser.add_argument("--formats", nargs="+", help="formats such as int4 e3m2 (default: all 3..8-bit formats)")
    parser.add_argument("--dsp", action="store_true", help="let Yosys map multipliers to DSP48E1")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        configs = configurations(args.quick, args.units, args.k, args.formats)
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        rows = run_sweep(configs, jobs=args.jobs, dsp=args.dsp)
    except MinifinnError as err:
        print(f"minifinn mac-sweep: {err}", file=sys.stderr)
        return 2
    write_csv(rows, out / "mac_costs.csv")
    plot(rows, out / "mac_costs.png")
    text = summarize(rows)
    (out / "summary.txt").write_text(text + "\n")
    print(text)
    print(f"{len(rows)} configurations in {time.time() - t0:.0f} s -> {out / 'mac_costs.csv'}, {out / 'mac_costs.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
