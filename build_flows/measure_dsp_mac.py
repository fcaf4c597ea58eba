"""Measure the MinifloatMVAU's DSP48 datapath against Yosys and fit its LUT terms.

    python build_flows/measure_dsp_mac.py --jobs 2
    python build_flows/measure_dsp_mac.py --refit-from docs/results/calibration/dsp_mac.csv

Every configuration of ``VARIANTS`` is synthesized twice with Yosys ``synth_xilinx -family xc7``: the LUT datapath
(``use_dsp = 0``, ``-nodsp``, as build_flows/calibrate_resources.py fits the LUT model) and the DSP48 datapath
(``use_dsp = 1``, DSP inference on). The ``dsp_*`` coefficients of the LUT model (custom_ops/mvau_estimates.py: the
LUTs that stay around a DSP48) are fitted on the DSP rows with the LUT datapath's coefficients fixed, and merged into
``--model-file``; ``dsp_mac.csv`` in ``--output-dir`` lists per variant and datapath the estimated and the Yosys
LUT / DSP counts and the LUT error. The DSP count is not fitted: the estimate is the packing plan's
(custom_ops/mac/packing.py), and the script reports where Yosys maps a different number.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from qonnx.custom_op.registry import getCustomOp

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import custom_ops  # noqa: E402, F401  (registers the hardware ops with qonnx/finn)
from build_flows.calibrate_resources import _random_mvau, fit_with_fixed, median_abs_pct_error  # noqa: E402
from compiler.errors import MinifinnError  # noqa: E402
from compiler.finn_env import ensure_finn_offline  # noqa: E402
from compiler.synth import synthesize  # noqa: E402
from finn.transformation.fpgadataflow.prepare_ip import PrepareIP  # noqa: E402

# (input, weight, output, MW, MH, PE, SIMD, noActivation): the study's 4/6/8-bit formats and integers, PE >= 2 so
# that products pack; raw accumulator outputs (noActivation), so that the MAC datapath is what is measured (the
# threshold stage has its own fit, custom_ops/threshold_cost.py, and dominates an 8-bit output's LUTs)
VARIANTS = [
    ("e2m1", "e2m1", "int8", 32, 16, 4, 4, 1), ("e3m2", "e3m2", "int8", 32, 16, 4, 4, 1),
    ("e4m3", "e4m3", "int8", 32, 16, 4, 4, 1), ("int4", "int4", "int8", 32, 16, 4, 4, 1),
    ("int8", "int8", "int8", 32, 16, 2, 4, 1), ("e4m3", "e4m3", "int8", 32, 16, 8, 2, 1),
    ("e3m2", "e3m2", "int8", 64, 32, 8, 8, 1), ("int8", "e2m1", "int8", 32, 8, 2, 8, 1),
    ("e2m1", "e2m1", "int8", 64, 16, 8, 8, 1), ("int6", "int6", "int8", 32, 12, 6, 4, 1),
]
DSP_FEATURES = ("dsp_lane_bits", "dsp_shift_bits", "dsp_pack_bits")
FIELDS = ["input", "weight", "output", "MW", "MH", "PE", "SIMD", "noActivation", "use_dsp"]


def _node(config, use_dsp):
    model = _random_mvau(config)
    getCustomOp(model.graph.node[0]).set_nodeattr("use_dsp", use_dsp)
    return model


def measure(job):
    """(features, estimated DSPs, Yosys LUTs, Yosys DSPs) of one configuration and datapath."""
    config, use_dsp = job
    ensure_finn_offline()
    model = _node(config, use_dsp).transform(PrepareIP("xc7z020clg400-1", 10.0))
    inst = getCustomOp(model.graph.node[0])
    res = synthesize(inst.get_rtl_file_list(abspath=True), top=inst.get_verilog_top_module_name(), dsp=bool(use_dsp))
    return res.lut_total, res.dsp


def _from_csv(path, jobs):
    measured = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            key = (tuple(row[k] if i < 3 else int(row[k]) for i, k in enumerate(FIELDS[:-1])), int(row["use_dsp"]))
            measured[key] = (int(row["LUT_yosys"]), int(row["DSP_yosys"]))
    missing = [j for j in jobs if j not in measured]
    if missing:
        raise MinifinnError(f"{path} has no measurement of {missing}; run without --refit-from to synthesize them")
    return [measured[j] for j in jobs]


def main(argv=None):
    p = argparse.ArgumentParser(description="Yosys LUT/DSP of the MVAU's LUT and DSP48 datapaths; fit the dsp_* terms")
    p.add_argument("--output-dir", type=Path, default=REPO / "docs" / "results" / "calibration")
    p.add_argument("--model-file", type=Path, default=REPO / "custom_ops" / "resource_model.json")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--refit-from", type=Path, default=None,
                   help="a dsp_mac.csv of an earlier run: refit without synthesizing again")
    args = p.parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(c, d) for c in VARIANTS for d in (0, 1)]
    if args.refit_from is not None:
        measured = _from_csv(args.refit_from, jobs)
    else:
        with ThreadPoolExecutor(args.jobs) as pool:
            measured = list(pool.map(measure, jobs))
    insts = [getCustomOp(_node(c, d).graph.node[0]) for c, d in jobs]
    feats = [inst.resource_features() for inst in insts]
    model = json.loads(args.model_file.read_text())
    coeffs = {k: v for k, v in model["lut_coefficients"].items() if k not in DSP_FEATURES}
    names = sorted(feats[0])
    dsp_rows = [i for i, (_, d) in enumerate(jobs) if d]
    X = np.array([[feats[i][n] for n in names] for i in dsp_rows], dtype=float)
    y = np.array([measured[i][0] for i in dsp_rows], dtype=float)
    coeffs = fit_with_fixed(X, y, names, coeffs)
    pred = [sum(coeffs[n] * f[n] for n in names) for f in feats]
    lut_rows = [i for i, (_, d) in enumerate(jobs) if not d]
    err = {d: median_abs_pct_error([pred[i] for i in rows], [measured[i][0] for i in rows])
           for d, rows in ((0, lut_rows), (1, dsp_rows))}
    model["lut_coefficients"] = coeffs
    model["dsp_terms_fitted_on"] = ("Yosys synth_xilinx -family xc7 (DSP inference on) of MinifloatMVAU_rtl use_dsp=1, "
                                    "build_flows/measure_dsp_mac.py")
    model["median_abs_pct_error_dsp_datapath"] = round(err[1], 2)
    args.model_file.write_text(json.dumps(model, indent=2) + "\n")
    with open(args.output_dir / "dsp_mac.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(FIELDS + ["LUT_model", "LUT_yosys", "abs_pct_error", "DSP_model", "DSP_yosys"])
        for i, ((cfg, d), inst) in enumerate(zip(jobs, insts)):
            lut, dsp = measured[i]
            w.writerow([*cfg, d, int(round(pred[i])), lut, round(abs(pred[i] - lut) / lut * 100, 1),
                        inst.dsp_estimation(), dsp])
            print(f"{'x'.join(cfg[:2])}->{cfg[2]} {cfg[3]}x{cfg[4]} PE{cfg[5]} SIMD{cfg[6]} use_dsp={d}: "
                  f"LUT {int(round(pred[i]))} est / {lut} yosys, DSP {inst.dsp_estimation()} est / {dsp} yosys")
    print(f"median |LUT error|: LUT datapath {err[0]:.1f} %, DSP datapath {err[1]:.1f} %; dsp_* coefficients "
          f"{ {n: round(coeffs[n], 3) for n in DSP_FEATURES} } -> {args.model_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
