"""Measure and fit the cost of the requantizer styles of MinifloatThresholding with Yosys ``synth_xilinx`` (xc7).

    python build_flows/requant_cost_fit.py --output-dir out/requant_cost --lane-table   # measure, fit, write tables
    python build_flows/requant_cost_fit.py --refit-from out/requant_cost/requant_cost.csv

Measuring: the generated RTL (``MinifloatThresholding_rtl.generate_hdl``) of every configuration in ``GRID`` (style
variant x output format x accumulator width x channels x PE) is synthesized; thresholds and conversion parameters come
from random per-channel affine maps (``random_requantizer``), so the thresholds are realistic (sorted, spread over
the accumulator range). Style variants: ``bsearch-lut`` (ram_style "distributed"), ``bsearch-bram`` ("block"),
``convert-dsp`` (use_dsp 1, Yosys with DSP48E1 inference), ``convert-lut`` (use_dsp 0, ``-nodsp``), ``parallel``.
Fitting: the linear models of ``custom_ops/requant_cost.py`` ("bsearch", "convert-dsp", "convert-lut";
``model_features``), by non-negative least squares on relative residuals (``calibrate_resources.fit_linear_model``)
over ``GRID``. The printed coefficients go into ``COEFFICIENTS`` by hand; the measured table with the estimate of
the current coefficients and its error per design is written to ``<output-dir>/requant_cost.{json,md}`` (kept in
docs/results/, read by tests/test_requant_cost.py). The "parallel" rows are estimated by
``custom_ops/threshold_cost.py`` through the op itself.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.util.basic import qonnx_make_model

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import custom_ops  # noqa: E402, F401  (registers the hardware ops with qonnx/finn)
from build_flows.calibrate_resources import fit_linear_model  # noqa: E402
from compiler.finn_env import ensure_finn_offline  # noqa: E402
from compiler.numerics import parse_format  # noqa: E402
from compiler.synth import synthesize  # noqa: E402
from custom_ops.requant_cost import COEFFICIENTS, FEATURES, config_resources, model_features  # noqa: E402
from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers  # noqa: E402
from passes.requant_params import convert_params, params_initializer  # noqa: E402
from passes.thresholds import requant_thresholds  # noqa: E402

PART = "xc7z020clg400-1"
RESOURCES = ("LUT", "FF", "BRAM_18K", "DSP")
MODELS = {"bsearch": ("bsearch-lut", "bsearch-bram", "bsearch-auto"), "convert-dsp": ("convert-dsp",),
          "convert-lut": ("convert-lut",)}
VARIANTS = {
    "parallel": ("parallel", {}),
    "bsearch-lut": ("bsearch", {"ram_style": "distributed"}),
    "bsearch-bram": ("bsearch", {"ram_style": "block"}),
    "bsearch-auto": ("bsearch", {"ram_style": "auto"}),
    "convert-dsp": ("convert", {"use_dsp": 1}),
    "convert-lut": ("convert", {"use_dsp": 0}),
}
#: (variant, output format, accumulator bits, channels, PE): the fitted grid
GRID = [
    (v, f, a, c, pe)
    for v in ("convert-dsp", "convert-lut", "bsearch-bram", "bsearch-lut")
    for f, a, c, pe in (
        ("fp:e2m1", 16, 16, 1), ("fp:e2m1", 24, 64, 1), ("fp:e2m1", 32, 128, 2), ("fp:e2m1", 20, 64, 4),
        ("fp:e3m2", 16, 16, 1), ("fp:e3m2", 24, 64, 1), ("fp:e3m2", 32, 64, 2), ("fp:e3m2", 40, 128, 1),
        ("fp:e3m2", 24, 128, 4), ("fp:e4m3", 16, 16, 2), ("fp:e4m3", 24, 64, 1), ("fp:e4m3", 28, 32, 1),
        ("int:4", 24, 64, 1), ("int:8", 36, 16, 4), ("uint:6", 20, 32, 2),
    )
]
#: held-out configurations (not fitted): the error on unseen designs
HELD_OUT = [
    ("bsearch-lut", "fp:e3m2", 20, 32, 2), ("bsearch-bram", "fp:e4m3", 20, 32, 1),
    ("bsearch-auto", "fp:e3m2", 28, 64, 1), ("convert-dsp", "fp:e4m3", 30, 32, 2),
    ("convert-lut", "fp:e2m1", 18, 32, 1), ("convert-dsp", "int:8", 20, 64, 1),
]
#: one 64-channel lane per style and output format, 24-bit accumulators (the issue's table)
LANE_TABLE = [(v, f, 24, 64, 1) for f in ("fp:e2m1", "fp:e3m2", "fp:e4m3")
              for v in ("parallel", "bsearch-lut", "bsearch-auto", "convert-dsp", "convert-lut")
              if not (v == "parallel" and f == "fp:e4m3")]


def random_requantizer(fmt, channels, acc_bits, seed, scale_bits=16):
    """Thresholds (C, N), channel signs and (C, 3) conversion parameters of random per-channel maps whose outputs
    span the format over the accumulator range (the same maps for every style)."""
    rng = np.random.default_rng(seed)
    top = float(fmt.max_int)
    mults = [Fraction(float(np.float32(rng.choice([-1, 1]) * 2.0 ** rng.uniform(-3, 1) * top / 2 ** (acc_bits - 1))))
             for _ in range(channels)]
    offsets = [Fraction(float(np.float32(rng.normal(0, top / 8)))) for _ in range(channels)]
    m, b, s = convert_params(mults, offsets, scale_bits)
    lo, hi = -(2 ** (acc_bits - 1)), 2 ** (acc_bits - 1) - 1
    a = [Fraction(x, 2**k) for x, k in zip(m, s)]
    o = [Fraction(x, 2**k) for x, k in zip(b, s)]
    t, signs = requant_thresholds(fmt, Fraction(2) ** -fmt.lsb_exponent, a, o, acc_range=(lo, hi))
    return np.asarray(t, dtype=np.int64), signs, params_initializer(m, b, s)


def design(variant, fmt_name, acc_bits, channels, pe, code_dir, seed=0):
    """The specialized node of one configuration with its RTL generated into ``code_dir``."""
    style, attrs = VARIANTS[variant]
    fmt = parse_format(fmt_name)
    t, signs, params = random_requantizer(fmt, channels, acc_bits, seed)
    node = helper.make_node(
        "MinifloatThresholding", ["acc", "T", "P"], ["y"], domain="finn.custom_op.fpgadataflow",
        backend="fpgadataflow", NumChannels=channels, PE=pe, inputDataType=f"INT{acc_bits}",
        outputDataType=fmt.datatype.name, requantStyle=style, channel_signs=[int(s) for s in signs],
        preferred_impl_style="rtl", **attrs)
    graph = helper.make_graph([node], "requant", [helper.make_tensor_value_info("acc", TensorProto.FLOAT,
                                                                              [1, channels])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels])])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_initializer("T", t)
    model.set_initializer("P", params)
    model = model.transform(GiveUniqueNodeNames()).transform(SpecializeLayers(PART))
    inst = getCustomOp(model.graph.node[0])
    code_dir.mkdir(parents=True, exist_ok=True)
    inst.set_nodeattr("code_gen_dir_ipgen", str(code_dir))
    inst.generate_hdl(model, PART, 10.0)
    return inst


def measure(config, work_dir, cache=True):
    """(name, node attributes, Yosys counts {LUT, FF, BRAM_18K, DSP}, the op's own estimate) of a configuration."""
    variant, fmt_name, acc_bits, channels, pe = config
    name = f"{variant}_{fmt_name.replace(':', '')}_a{acc_bits}_c{channels}_pe{pe}"
    inst = design(variant, fmt_name, acc_bits, channels, pe, Path(work_dir) / name)
    dsp = variant == "convert-dsp"
    res = synthesize(inst.get_rtl_file_list(abspath=True), inst.top_name(), dsp=dsp, cache=cache)
    measured = {"LUT": res.lut_total, "FF": res.ff, "BRAM_18K": int(round(2 * res.bram36)), "DSP": res.dsp}
    est = inst.node_res_estimation(PART)
    return name, node_config(inst), measured, {k: int(est[k]) for k in RESOURCES}


def node_config(inst):
    """The attributes the cost model reads (``custom_ops.requant_cost.config_resources``) of a generated node."""
    widths = list(inst.get_nodeattr("convertWidths")) or inst.convert_widths()
    return {"n_thresholds": inst.n_thresholds(), "out_bits": inst.output_format().bits,
            "block_mask": inst.block_stages(), "mult_bits": widths[0], "bias_bits": widths[1],
            "shift_bits": widths[2], "use_dsp": inst.get_nodeattr("use_dsp")}


def op_estimate(row):
    """The op's own estimate of a measured row (its node regenerated; "parallel": custom_ops/threshold_cost.py)."""
    config = tuple(row[k] for k in ("variant", "format", "acc_bits", "channels", "pe"))
    with tempfile.TemporaryDirectory() as tmp:
        est = design(*config, Path(tmp)).node_res_estimation(PART)
    return {k: int(est[k]) for k in RESOURCES}


def fit(rows):
    """Coefficients per (model, resource) fitted on the rows of ``GRID`` (held-out rows excluded)."""
    coef = {}
    for model, variants in MODELS.items():
        fit_rows = [r for r in rows if r["variant"] in variants and not int(r["held_out"])]
        if len(fit_rows) < len(FEATURES[model.split("-")[0]]):
            continue
        for target in ("LUT", "FF"):
            c = fit_linear_model([model_features(model, r) for r in fit_rows], [float(r[target]) for r in fit_rows],
                                 FEATURES[model.split("-")[0]])
            coef[(model, target)] = tuple(round(v, 3) for v in c.values())
    return coef


def error_table(rows):
    """Every row with the estimate of the current COEFFICIENTS and the relative error per resource; summary per
    model: mean and max |error| of LUT and FF."""
    table, summary = [], {}
    for r in rows:
        est = r.get("estimate") or (op_estimate(r) if r["variant"] == "parallel" else config_resources(r))
        err = {k: round((est[k] - int(r[k])) / int(r[k]), 4) if int(r[k]) else None for k in RESOURCES}
        table.append({**r, "estimate": {k: int(est[k]) for k in RESOURCES}, "error": err})
        summary.setdefault(r["variant"], []).append(err)
    stats = {v: {k: {"mean": round(sum(abs(e[k]) for e in errs) / len(errs), 4),
                     "max": round(max(abs(e[k]) for e in errs), 4)} for k in ("LUT", "FF")}
             for v, errs in summary.items()}
    return table, stats


def write_tables(out, table, stats):
    (out / "requant_cost.json").write_text(json.dumps({"part": PART, "tool": "yosys synth_xilinx -family xc7",
                                                       "error_summary": stats, "designs": table}, indent=1) + "\n")
    lines = ["# Requantizer styles: cost model vs Yosys synth_xilinx (xc7)", "",
             "Generated by build_flows/requant_cost_fit.py. Estimate / Yosys per design; held-out designs are not "
             "in the fit.", "",
             "| variant | format | acc bits | C | PE | LUT est / Yosys | FF est / Yosys | BRAM18 est / Yosys | "
             "DSP est / Yosys | held out |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        e = r["estimate"]
        held = "yes" if int(r["held_out"]) else ""
        lines.append(f"| {r['variant']} | {r['format']} | {r['acc_bits']} | {r['channels']} | {r['pe']} | "
                     + " | ".join(f"{e[k]} / {r[k]}" for k in RESOURCES) + f" | {held} |")
    lines += ["", "| variant | LUT mean / max error | FF mean / max error |", "|---|---|---|"]
    for v, s in stats.items():
        lines.append(f"| {v} | {s['LUT']['mean']:.1%} / {s['LUT']['max']:.1%} | "
                     f"{s['FF']['mean']:.1%} / {s['FF']['max']:.1%} |")
    (out / "requant_cost.md").write_text("\n".join(lines) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", default="out/requant_cost")
    parser.add_argument("--refit-from", default=None, nargs="+",
                        help="requant_cost.csv files (of earlier runs) to fit without synthesizing")
    parser.add_argument("--only", default=None, help="comma-separated variants to measure")
    parser.add_argument("--lane-table", action="store_true", help="also measure LANE_TABLE (the parallel style too)")
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ensure_finn_offline(out / "finn_build")
    rows = []
    if args.refit_from:
        seen = set()
        for path in args.refit_from:
            with open(path) as fh:
                for r in csv.DictReader(fh):
                    key = tuple(r[k] for k in ("variant", "format", "acc_bits", "channels", "pe"))
                    if key not in seen:
                        seen.add(key)
                        rows.append({k: v if k in ("variant", "format") else int(v) for k, v in r.items()})
    else:
        configs = GRID + HELD_OUT + (LANE_TABLE if args.lane_table else [])
        grid = [g for g in dict.fromkeys(configs) if not args.only or g[0] in args.only.split(",")]
        for config in grid:
            name, cfg, m, est = measure(config, out / "designs")
            row = dict(zip(("variant", "format", "acc_bits", "channels", "pe"), config), **cfg, **m,
                       held_out=int(config not in GRID), estimate=est)
            rows.append(row)
            print(name, m, flush=True)
        with open(out / "requant_cost.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=[k for k in rows[0] if k != "estimate"])
            writer.writeheader()
            writer.writerows([{k: v for k, v in r.items() if k != "estimate"} for r in rows])
    for (model, target), coef in fit(rows).items():
        now = COEFFICIENTS[(model, target)]
        print(f"{model} {target}: fitted {dict(zip(FEATURES[model.split('-')[0]], coef))}"
              f"{'' if coef == now else ' (COEFFICIENTS differ: ' + str(now) + ')'}")
    table, stats = error_table(rows)
    write_tables(out, table, stats)
    for v, s in stats.items():
        print(f"{v}: LUT error mean {s['LUT']['mean']:.1%} max {s['LUT']['max']:.1%}, "
              f"FF mean {s['FF']['mean']:.1%} max {s['FF']['max']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
