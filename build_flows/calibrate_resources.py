"""Calibrate the MinifloatMVAU LUT / FF estimate against Yosys ``synth_xilinx`` (xc7) results.

    python build_flows/calibrate_resources.py --jobs 2
    python build_flows/calibrate_resources.py --refit-from docs/results/calibration/calibration.csv

Measuring: the generated RTL of a grid of MinifloatMVAU configurations (formats, sizes, foldings:
``CALIBRATION_GRID``, plus ``HELD_OUT`` for the error on unseen designs) is synthesized with Yosys. Fitting is
independent of the hardware: a linear model  resource ~= sum_j c_j * f_j(config)  over physically motivated
features, fitted by non-negative least squares on *relative* residuals (each row divided by its measured value),
because the quality target is a median absolute percentage error and the designs span two orders of magnitude in
size. Non-negative coefficients keep every term a cost (no cancelling terms that extrapolate badly). Outputs:
``--model-file`` (coefficients and errors, read by the MVAU's estimate), ``calibration.csv`` and ``calibration.png``
in ``--output-dir``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from qonnx.custom_op.registry import getCustomOp
from scipy.optimize import nnls

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import custom_ops  # noqa: E402, F401  (registers the hardware ops with qonnx/finn)
from compiler.errors import MinifinnError  # noqa: E402
from compiler.finn_env import ensure_finn_offline  # noqa: E402
from compiler.numerics import parse_format  # noqa: E402
from compiler.synth import synthesize  # noqa: E402
from custom_ops.examples import random_mvau_model  # noqa: E402
from finn.transformation.fpgadataflow.prepare_ip import PrepareIP  # noqa: E402


def fit_linear_model(X, y, feature_names, *, relative: bool = True, nonneg: bool = True) -> dict:
    """Least-squares fit of ``y ~= X @ c``; returns ``{feature name: coefficient}``.

    ``relative=True`` minimises sum(((X c - y) / y)^2) (needs y > 0); ``nonneg=True`` constrains c >= 0 (scipy nnls).
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    names = list(feature_names)
    if X.ndim != 2 or X.shape[0] != y.shape[0] or X.shape[1] != len(names):
        raise MinifinnError(f"fit: X {X.shape}, y {y.shape} and {len(names)} feature names do not match")
    if X.shape[0] < X.shape[1]:
        raise MinifinnError(f"fit: {X.shape[0]} samples for {X.shape[1]} features; need at least as many samples")
    if not np.all(np.isfinite(X)) or not np.all(np.isfinite(y)):
        raise MinifinnError("fit: features or targets contain NaN/inf")
    if relative:
        if np.any(y <= 0):
            raise MinifinnError(f"fit: relative fit needs positive targets; found {int(np.sum(y <= 0))} <= 0")
        A, b = X / y[:, None], np.ones_like(y)
    else:
        A, b = X, y
    # column scaling for conditioning; undone on the coefficients
    scale = np.linalg.norm(A, axis=0)
    scale[scale == 0] = 1.0
    As = A / scale
    if nonneg:
        cs, _ = nnls(As, b, maxiter=50 * As.shape[1])
    else:
        cs, *_ = np.linalg.lstsq(As, b, rcond=None)
    c = cs / scale
    return {n: float(v) for n, v in zip(names, c)}


def predict(coeffs: dict, feats: dict) -> float:
    """sum_j c_j * f_j; every coefficient's feature must be present."""
    missing = [n for n in coeffs if n not in feats]
    if missing:
        raise MinifinnError(f"predict: features {missing} missing (have {sorted(feats)})")
    return float(sum(c * feats[n] for n, c in coeffs.items()))


def abs_pct_errors(pred, meas) -> np.ndarray:
    pred = np.asarray(pred, dtype=float)
    meas = np.asarray(meas, dtype=float)
    return 100.0 * np.abs(pred - meas) / np.maximum(np.abs(meas), 1e-12)


def median_abs_pct_error(pred, meas) -> float:
    return float(np.median(abs_pct_errors(pred, meas)))


# ----------------------------------------------------------------------------------------------------------------------
# Measuring: synthesize the generated MinifloatMVAU RTL over a grid of formats, sizes and foldings.

def _fmt(name):
    return parse_format(name)


# (input, weight, output, MW, MH, PE, SIMD, noActivation[, ram_style]); ram_style "auto" unless given: the weight
# ROM in LUTs ("distributed") or block RAM ("block"), the node's attribute
CALIBRATION_GRID = [
    ("int4", "int4", "int4", 32, 16, 2, 4, 0), ("int8", "int8", "int8", 32, 16, 2, 4, 1),
    ("e3m2", "e3m2", "e3m2", 32, 16, 2, 4, 0), ("e2m1", "e2m1", "e2m1", 64, 16, 4, 8, 0),
    ("e4m3", "e4m3", "e3m2", 32, 8, 2, 2, 0), ("e2m3", "e2m3", "e2m3", 16, 16, 4, 4, 0),
    ("int6", "int6", "int4", 48, 12, 3, 6, 0), ("e3m2", "int4", "e3m2", 32, 16, 4, 2, 0),
    ("e1m2", "e1m2", "e1m2", 64, 32, 8, 8, 0), ("int3", "int3", "int3", 64, 64, 8, 8, 0),
    ("e4m3", "e4m3", "e4m3", 16, 8, 1, 4, 1), ("e5m2", "e5m2", "e2m1", 16, 8, 2, 2, 0),
    ("int8", "e2m1", "int8", 32, 8, 2, 8, 0), ("e3m4", "e3m4", "e3m2", 32, 16, 4, 4, 0),
    # the fully folded regime of the ViT (one lane reads 64 threshold rows)
    ("e3m2", "e3m2", "e3m2", 64, 64, 1, 8, 0), ("int4", "int4", "int4", 64, 64, 1, 4, 0),
    # PE = SIMD = 1 (the flagship ViT fully folded): 4K-word weight ROMs in LUTs or block RAM
    ("e3m2", "e3m2", "e3m2", 64, 64, 1, 1, 1, "distributed"), ("e3m2", "e3m2", "e3m2", 64, 64, 1, 1, 1, "block"),
    ("e4m3", "e4m3", "e4m3", 64, 128, 1, 1, 1, "block"), ("int4", "int4", "int4", 64, 64, 2, 2, 0, "block"),
    ("e3m2", "e3m2", "e3m2", 128, 64, 1, 1, 1, "distributed"), ("e2m1", "e2m1", "e2m1", 32, 32, 1, 1, 1),
]
HELD_OUT = [
    ("e3m2", "e3m2", "e3m2", 64, 32, 4, 8, 0), ("int4", "int4", "int4", 64, 32, 8, 4, 0),
    ("e2m1", "e3m2", "e2m1", 48, 24, 6, 4, 0), ("e4m3", "int8", "e4m3", 32, 16, 2, 4, 1),
    ("e2m2", "e2m2", "e2m2", 32, 16, 4, 4, 0), ("int5", "int5", "int5", 32, 32, 4, 4, 0),
    ("e3m2", "e3m2", "e3m2", 128, 64, 2, 16, 0, "distributed"),
    ("e3m2", "e3m2", "e3m2", 64, 128, 1, 1, 1, "block"), ("e3m2", "e3m2", "e3m2", 64, 64, 1, 1, 0, "block"),
    ("e2m1", "e2m1", "e2m1", 64, 64, 1, 2, 1, "distributed"),
]


#: features whose coefficient is not fitted here: the threshold stage is fitted on its own core
#: (custom_ops/threshold_cost.py), so the MVAU fit only explains what remains
FIXED_COEFFICIENTS = {"threshold_stage": 1.0}


def ram_style_of(config):
    """The weight ROM's ``ram_style`` of a configuration (its optional 9th field, else "auto")."""
    return config[8] if len(config) > 8 else "auto"


def _random_mvau(config):
    fa, fw, fo, mw, mh, pe, simd, no_act = config[:8]
    model, _ = random_mvau_model(_fmt(fa), _fmt(fw), _fmt(fo), mw, mh, pe, simd, no_act, domain_suffix=".rtl")
    model.graph.node[0].op_type = "MinifloatMVAU_rtl"
    getCustomOp(model.graph.node[0]).set_nodeattr("ram_style", ram_style_of(config))
    return model


def storage_of(config):
    """Where the configuration's weights go ("lutram", "bram"; the node's ``_weight_storage``)."""
    return getCustomOp(_random_mvau(config).graph.node[0])._weight_storage()


def features_of(config):
    """Model features of one configuration (the same seeded random MVAU that ``measure`` synthesizes)."""
    return getCustomOp(_random_mvau(config).graph.node[0]).resource_features()


def fit_with_fixed(X, y, names, fixed):
    """``fit_linear_model`` of the features not in ``fixed`` on what the fixed terms leave of ``y``."""
    free = [n for n in names if n not in fixed]
    idx = {n: i for i, n in enumerate(names)}
    offset = sum(X[:, idx[n]] * c for n, c in fixed.items() if n in idx)
    X_free = X[:, [idx[n] for n in free]]
    # relative residual ((X c + offset - y) / y): the fit of X_free on y - offset, weighted by the full y
    A, b = X_free / y[:, None], 1.0 - offset / y
    coeffs = fit_linear_model(A, b, free, relative=False)
    coeffs.update({n: c for n, c in fixed.items() if n in idx})
    return coeffs


def measure(config, jobs=1):
    """Yosys LUTs of the generated RTL of one MinifloatMVAU configuration, plus its model features."""
    ensure_finn_offline()
    model = _random_mvau(config).transform(PrepareIP("xc7z020clg400-1", 10.0))
    inst = getCustomOp(model.graph.node[0])
    res = synthesize(inst.get_rtl_file_list(abspath=True), top=inst.get_verilog_top_module_name())
    return inst.resource_features(), res.lut_total, res.ff


def _csv_key(config, storage):
    return (*config[:8], storage)


def _results_from_csv(path, configs, jobs=1):
    """(features, LUT, FF) per configuration from an earlier run's calibration.csv; configurations it lacks (rows
    are keyed by the configuration and where its weights went, ``storage``: rows without the column are LUT ROMs)
    are synthesized."""
    measured = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            key = (row["input"], row["weight"], row["output"], *(int(row[k]) for k in
                                                                 ("MW", "MH", "PE", "SIMD", "noActivation")))
            measured[_csv_key(key, row.get("storage") or "lutram")] = (int(row["LUT_yosys"]), int(row["FF_yosys"]))
    keys = [_csv_key(c, storage_of(c)) for c in configs]
    missing = [c for c, k in zip(configs, keys) if k not in measured]
    with ThreadPoolExecutor(jobs) as pool:
        for c, (_, lut, ff) in zip(missing, pool.map(measure, missing)):
            measured[_csv_key(c, storage_of(c))] = (lut, ff)
    return [(features_of(c), *measured[k]) for c, k in zip(configs, keys)]


def main(argv=None):
    p = argparse.ArgumentParser(description="Fit the MinifloatMVAU LUT model to Yosys synthesis of its RTL")
    p.add_argument("--output-dir", type=Path, default=REPO / "docs" / "results" / "calibration")
    p.add_argument("--model-file", type=Path, default=REPO / "custom_ops" / "resource_model.json")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--refit-from", type=Path, default=None,
                   help="a calibration.csv of an earlier run: refit its measured LUTs, synthesizing only the "
                        "configurations it lacks")
    args = p.parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    configs = CALIBRATION_GRID + HELD_OUT
    if args.refit_from is not None:
        results = _results_from_csv(args.refit_from, configs, args.jobs)
    else:
        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(measure, configs))
    names = sorted(results[0][0])
    X = np.array([[r[0][n] for n in names] for r in results], dtype=float)
    y = np.array([r[1] for r in results], dtype=float)
    n_cal = len(CALIBRATION_GRID)
    # the DSP48 datapath's terms (zero on these LUT-datapath configurations) are fitted by measure_dsp_mac.py: kept
    kept = json.loads(args.model_file.read_text()) if args.model_file.is_file() else {}
    dsp_terms = {k: v for k, v in kept.get("lut_coefficients", {}).items() if k.startswith("dsp_")}
    coeffs = fit_with_fixed(X[:n_cal], y[:n_cal], names, {**FIXED_COEFFICIENTS, **dsp_terms})
    pred = X @ np.array([coeffs[n] for n in names])
    err_cal = median_abs_pct_error(pred[:n_cal], y[:n_cal])
    err_held = median_abs_pct_error(pred[n_cal:], y[n_cal:])
    args.model_file.write_text(json.dumps({
        "lut_coefficients": coeffs,
        "fitted_on": "Yosys synth_xilinx -family xc7 -nodsp of MinifloatMVAU_rtl (lut_total)",
        "median_abs_pct_error_calibration": round(err_cal, 2),
        "median_abs_pct_error_held_out": round(err_held, 2),
        "calibration_configs": len(CALIBRATION_GRID), "held_out_configs": len(HELD_OUT),
        **{k: v for k, v in kept.items() if k.startswith(("dsp_", "median_abs_pct_error_dsp"))},
    }, indent=2) + "\n")
    with open(args.output_dir / "calibration.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["set", "input", "weight", "output", "MW", "MH", "PE", "SIMD", "noActivation", "storage",
                    "LUT_yosys", "FF_yosys", "LUT_model", "abs_pct_error"])
        for i, (cfg, r) in enumerate(zip(configs, results)):
            w.writerow(["calibration" if i < n_cal else "held_out", *cfg[:8], storage_of(cfg), int(y[i]), r[2],
                        int(round(pred[i])), round(float(abs_pct_errors([pred[i]], [y[i]])[0]), 1)])
    fig = Figure(figsize=(5.5, 5))  # matplotlib's object API: no pyplot state, no global backend
    ax = fig.subplots()
    ax.loglog(y[:n_cal], pred[:n_cal], "o", label=f"calibration (median {err_cal:.1f} %)")
    ax.loglog(y[n_cal:], pred[n_cal:], "s", label=f"held out (median {err_held:.1f} %)")
    lim = [min(y.min(), pred.min()) * 0.8, max(y.max(), pred.max()) * 1.2]
    ax.plot(lim, lim, "k-", lw=0.8)
    ax.set(xlabel="Yosys LUTs", ylabel="model LUTs", title="MinifloatMVAU LUT model vs Yosys (xc7)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.output_dir / "calibration.png", dpi=110)
    print(f"median |error|: calibration {err_cal:.1f} % ({n_cal} configs), held out {err_held:.1f} % "
          f"({len(HELD_OUT)} configs); coefficients -> {args.model_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
