"""Design-space exploration: hardware-exact accuracy vs hardware cost, minifloat vs integer, 3-8 bits.

    python build_flows/dse.py --quick                          # MLP on digits, 4 formats, 1 seed, seconds
    python build_flows/dse.py --model cnn --model vit --seeds 3 --jobs 2 --output-dir out/dse     # make dse
    python build_flows/dse.py --model cnn --cross --formats int:4 fp:e2m1 fp:e3m2 int:8   # W x A cross product
    python build_flows/dse.py --model vit --ptq best --mixed --confirm-images 4000
    minifinn dse --help

Every point (model, W, A, training seed): PTQ on 512 calibration images (``--ptq calibrate``, the default;
``--ptq best``: Brevitas technique sets, the best on held-out data, as the paper reports), QONNX export, lowering,
accuracy of the lowered (hardware-exact) graph on ``--images`` test images (ViT: also the hardware graph, batched,
on ``--hw-images``), and the compiler's cost at ``--target-cycles`` cycles per frame with DSPs and LUT-only, split
into MAC / requantizer / memory / other by the ops (compiler/dse/). ``--seeds`` float models per network
(independent trainings, compiler/zoo/configs.py recipes); mean ± std and the noise rule in compiler/dse/stats.py.
Outputs in --output-dir: ``dse_points_seeds.{csv,json}`` (per seed), ``dse_points.{csv,json}`` (aggregated, Pareto
flags for LUT with DSPs, LUT-only LUT and weight memory), ``pareto.png``, ``index.html`` and ``README.md``
(build_flows/dse_report.py: the paper side by side per width, Pareto fronts, breakdowns, failed points); finished
points are cached in ``points/`` and reused, so a rerun resumes. ``--mixed`` adds ``mixed_precision.json``:
per-layer weight formats from a sensitivity-guided search (compiler/dse/mixed.py) against the best uniform format
within a LUT budget, on seed 0; ``--confirm-images`` re-measures both winners on test images the search did not see.

Time budget of ``make dse`` (2 models x 16 formats (``STUDY_FORMATS``) x 3 seeds = 96 points, ``--jobs 2``,
calibration-only PTQ, 2,000 test images, ViT hardware-graph check on 300): estimated **about 75 min** (budget 2 h),
from single-seed measurements on this 2-core machine, each with a second heavy process running (so the times already
include sharing the cores as ``--jobs 2`` does), 2026-12-06:

* float training per seed: CNN 730 s, ViT 140 s (compiler/zoo/configs.py); ``run_points`` trains the 6 float models
  in the 2 workers before the points: about 1,460-1,600 s wall (the CNNs dominate);
* points (PTQ + export + lowering + accuracy + both cost variants + the ViT's hardware-graph check): ViT 31-41 s
  (INT3/4/6, E1M1, E2M1, E3M2), E5M2 100 s; CNN 31-46 s (INT4/6/8, E2M1, E3M2, E4M3), E5M2 about 220 s. Per seed
  about 13 x 45 + 2 x 60 + 220 = 925 s (CNN) and 13 x 40 + 2 x 60 + 100 = 740 s (ViT): 3 seeds 4,995 s of compute,
  about 2,500 s wall on 2 workers;
* total about 1,600 + 2,500 s = 68 min, plus process start-up and data loading: about 75 min.

Measured (clean clone, idle machine, 2026-12-06): ``git clone`` + ``make dse`` **1 h 04 min 18 s** with the venv
set-up, ``dse.py`` 3,764 s: float training about 30 min wall (CNN 669-717 s, ViT 127-137 s per seed), 96 runs about
34 min (4,423 s of point compute on 2 workers; docs/results/dse/study_v3/make_dse.log). The formats were cut
from all 27 to ``STUDY_FORMATS`` (16) and PTQ to calibration only to fit: ``--ptq best`` runs several technique
sets per point (the previous study: about 100 s per point), and the 8-bit wide-exponent formats (E5M2, E6M1) cost
5-10 normal points each. ``--mixed`` (the previous study: about 64 min for both models) is not in the budget.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from build_flows.dse_report import PARETO_COSTS, write_report  # noqa: E402
from compiler.dse import (  # noqa: E402
    HW_CHECK_IMAGES,
    QUICK_FORMATS,
    STUDY_FORMATS,
    aggregate,
    compare,
    evaluate_point,
    layer_alternatives,
    mixed_precision_search,
    paper_table,
    pareto_flags,
    run_points,
)
from compiler.errors import ConfigError, FormatError, MinifinnError  # noqa: E402
from compiler.numerics import parse_format  # noqa: E402

CSV_FIELDS = ["model", "weights", "acts", "ptq", "seeds", "accuracy", "accuracy_std", "noise", "LUT", "FF", "BRAM_18K",
              "DSP", "LUT_mac", "LUT_lutonly", "DSP_lutonly", "BRAM_18K_lutonly", "LUT_mac_lutonly", "weight_bits",
              "pareto_lut", "pareto_lut_lutonly", "pareto_memory", "w_bits", "a_bits", "LUT_mvau", "accuracy_qonnx",
              "images", "max_cycles", "float_islands", "accuracy_hw", "hw_lowered_agreement", "hw_images", "seconds"]
SEED_CSV_FIELDS = ["model", "weights", "acts", "seed", "ptq", "accuracy", "accuracy_qonnx", "LUT", "DSP", "BRAM_18K",
                   "LUT_mac", "LUT_lutonly", "LUT_mac_lutonly", "accuracy_hw", "hw_images", "seconds"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="dse.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", choices=["mlp", "cnn", "vit"], help="default: cnn and vit")
    p.add_argument("--data", choices=["digits", "fashion"], default="fashion")
    p.add_argument("--formats", nargs="+", default=STUDY_FORMATS,
                   help="format specs (default: compiler.dse.STUDY_FORMATS; compiler.dse.ALL_FORMATS is every ExMy)")
    p.add_argument("--seeds", type=int, default=3, help="training seeds (independent float models) per point")
    p.add_argument("--cross", action="store_true", help="all weight x activation pairs (default: W = A)")
    p.add_argument("--ptq", choices=["best", "calibrate"], default="calibrate")
    p.add_argument("--first-last", default=None, metavar="FORMAT",
                   help="format of the first and the last layer (weights and the quantizer feeding each) at every "
                        "point, e.g. int:8; 'paper': int:8 at integer points and fp:e3m4 at minifloat points, as "
                        "the paper's benchmark scripts keep them (default: every layer in the point's format)")
    p.add_argument("--images", type=int, default=2000, help="test images per point")
    p.add_argument("--epochs", type=int, default=None,
                   help="float training epochs (default: the recipe's, compiler/zoo/configs.py TRAIN_RECIPES)")
    p.add_argument("--target-cycles", type=int, default=4096,
                   help="cycles per frame every layer is folded to (or the slowest layer's fastest pace)")
    p.add_argument("--hw-images", type=int, default=None,
                   help="images on which points with float islands (the ViT) also run through the hardware graph "
                        "(default 300; 0: off)")
    p.add_argument("--jobs", type=int, default=1, help="local processes")
    p.add_argument("--quick", action="store_true", help="MLP on digits, 4 formats, calibration only")
    p.add_argument("--mixed", action="store_true",
                   help="also search per-layer weight formats (minifloat or integer) under a LUT budget and compare "
                        "with the best uniform format at that budget")
    p.add_argument("--budget-lut", type=float, default=None,
                   help="LUT budget of the mixed-precision search (default: the median LUT of the uniform points)")
    p.add_argument("--mixed-start", default=None,
                   help="uniform format the mixed search starts from (default: the best uniform format within the "
                        "budget; a richer one above the budget is first brought down to it)")
    p.add_argument("--mixed-trials", type=int, default=None,
                   help="combined configurations the mixed search may evaluate after its single-layer probes "
                        "(default 2 per weight layer)")
    p.add_argument("--confirm-images", type=int, default=0,
                   help="re-measure the best uniform and the mixed result on this many further test images that the "
                        "search did not see (default 0: off)")
    p.add_argument("--output-dir", type=Path, default=Path("out/dse"))
    return p.parse_args(argv)


def tasks_for(args):
    if args.quick:
        models, data, formats, ptq, images = ["mlp"], "digits", QUICK_FORMATS, "calibrate", 359
        epochs, seeds = args.epochs or 10, 1 if args.seeds == 3 else args.seeds
    else:
        models, data, formats, ptq, images = args.model or ["cnn", "vit"], args.data, args.formats, args.ptq, \
            args.images
        epochs, seeds = args.epochs, args.seeds
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    pairs = [(w, a) for w in formats for a in formats] if args.cross else [(f, f) for f in formats]
    hw_images = HW_CHECK_IMAGES if args.hw_images is None else args.hw_images
    first_last = [_first_last(args.first_last, w) for w, _ in pairs]
    # seed-major: a stopped run has every format on the first seeds rather than a few formats on all seeds
    return [dict(model=m, w=w, a=a, ptq=ptq, data=data, images=images, target_cycles=args.target_cycles,
                 out_dir=str(args.output_dir), epochs=epochs, hw_images=hw_images, seed=seed, first_last=fl)
            for seed in range(seeds) for m in models for (w, a), fl in zip(pairs, first_last)]


#: ``--first-last paper``: the paper's benchmark scripts keep the first and last layer at 8 bits, E3M4 for minifloats
PAPER_FIRST_LAST = {"int": "int:8", "fp": "fp:e3m4"}


def _first_last(choice, weights):
    """The first/last-layer format of a point with weight format ``weights`` (None: the point's own)."""
    if choice is None:
        return None
    if choice == "paper":
        fmt = parse_format(weights)
        return PAPER_FIRST_LAST["fp" if fmt is not None and fmt.is_minifloat else "int"]
    try:
        parse_format(choice)
    except FormatError as err:
        raise ConfigError(f"--first-last {choice!r}: {err}; or 'paper'") from None
    return choice


def write_outputs(rows, out, run=None):
    """Per-seed rows go to ``dse_points_seeds.{json,csv}``; their aggregate over the seeds (``compiler.dse.aggregate``:
    mean, std, noise) gets Pareto flags, goes to ``dse_points.{json,csv}``, the plots, ``index.html`` and
    ``README.md`` (build_flows/dse_report.py); failed points are listed there. Returns the aggregated rows."""
    failed = [r for r in rows if r.get("error")]
    rows = [r for r in rows if not r.get("error")]
    if not rows:
        (out / "dse_failed.json").write_text(json.dumps(failed, indent=1))
        raise MinifinnError(f"none of the {len(failed)} points could be built (first: {failed[0]['model']} W "
                            f"{failed[0]['weights']} A {failed[0]['acts']}: {failed[0]['error']}); "
                            f"the list is in {out / 'dse_failed.json'}")
    (out / "dse_points_seeds.json").write_text(json.dumps(rows, indent=1))
    _csv(out / "dse_points_seeds.csv", rows, SEED_CSV_FIELDS)
    agg = aggregate(rows)
    for key, flag, _ in PARETO_COSTS:
        for row, f in zip(agg, pareto_flags(agg, key)):
            row[flag] = f
    (out / "dse_points.json").write_text(json.dumps(agg, indent=1))
    _csv(out / "dse_points.csv", agg, CSV_FIELDS)
    _plot(agg, out / "pareto.png")
    write_report(agg, paper_table(agg, compare), failed, out, run or {})
    (out / "dse_failed.json").write_text(json.dumps(failed, indent=1))
    return agg


def _csv(path, rows, fields):
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "float_islands": " ".join(row.get("float_islands", []))})


def _plot(rows, path):
    """Accuracy (mean ± std over the seeds) against each cost of ``PARETO_COSTS``, one row of panels per model."""
    matplotlib.use("Agg")
    models = sorted({r["model"] for r in rows})
    fig, axes = plt.subplots(len(models), len(PARETO_COSTS), figsize=(16, 4 * len(models)), squeeze=False)
    for i, model in enumerate(models):
        mine = [r for r in rows if r["model"] == model]
        for j, (key, flag, label) in enumerate(PARETO_COSTS):
            ax = axes[i][j]
            for kind, marker, color in (("int", "s", "tab:blue"), ("fp", "o", "tab:red")):
                pts = [r for r in mine if r["w_kind"] == kind]
                ax.errorbar([r[key] for r in pts], [100 * r["accuracy"] for r in pts],
                            yerr=[100 * r.get("accuracy_std", 0) for r in pts], fmt=marker, color=color,
                            label="integer" if kind == "int" else "minifloat", alpha=0.7, capsize=2)
            front = sorted((r for r in mine if r[flag]), key=lambda r: r[key])
            ax.plot([r[key] for r in front], [100 * r["accuracy"] for r in front], "k--", lw=1, label="Pareto front")
            for r in front:
                ax.annotate(r["weights"] if r["weights"] == r["acts"] else f"{r['weights']}/{r['acts']}",
                            (r[key], 100 * r["accuracy"]), fontsize=7)
            ax.set_xscale("log")
            ax.set_xlabel(f"{label} (whole hardware graph)" if key != "weight_bits" else label)
            ax.set_ylabel("hardware-exact accuracy [%]")
            ax.set_title(f"{model}: accuracy vs {label}")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mixed(args, tasks, rows):
    """Per model: sensitivity-guided per-layer weight formats vs the best uniform W = A point within one LUT budget."""
    results = {}
    for model in sorted({t["model"] for t in tasks}):
        uniform = [r for r in rows if r["model"] == model and r["weights"] == r["acts"] and not r.get("overrides")]
        results[model] = _mixed_model(args, next(t for t in tasks if t["model"] == model), uniform)
        # written after every model: the search takes long, an interrupted run keeps the finished models
        (args.output_dir / "mixed_precision.json").write_text(json.dumps(results, indent=1))
    return results


def _mixed_model(args, task, uniform):
    """One model's mixed-precision result: budget, best uniform point, search result, optional held-out check."""
    if not uniform:
        raise ConfigError(f"--mixed needs uniform W = A points of {task['model']}; none was built")
    budget = args.budget_lut or statistics.median(r["LUT"] for r in uniform)
    fitting = [r for r in uniform if r["LUT"] <= budget]
    best_uniform = max(fitting, key=lambda r: (r["accuracy"], -r["LUT"])) if fitting else None
    start = args.mixed_start or (best_uniform or min(uniform, key=lambda r: r["LUT"]))["weights"]
    alternatives = layer_alternatives(uniform, start)
    base = dict(task, w=start, a=start)
    print(f"  {task['model']}: mixed precision from {start} (budget {budget:.0f} LUT), alternatives "
          f"{' '.join(alternatives)}", flush=True)
    best, history, search = mixed_precision_search(base, start, alternatives, budget, max_trials=args.mixed_trials,
                                                   jobs=args.jobs)
    beats = bool(best_uniform and best["accuracy"] > best_uniform["accuracy"] and best["LUT"] <= budget)
    result = {"budget_lut": budget, "best_uniform": best_uniform, "mixed": best, "evaluated": len(history),
              "mixed_beats_uniform": beats, "search": search}
    bu = best_uniform
    print(f"  {task['model']}: budget {budget:.0f} LUT: best uniform "
          f"{bu['weights'] if bu else '-'} {100 * bu['accuracy'] if bu else float('nan'):.2f} % "
          f"({bu['LUT'] if bu else float('nan'):.0f} LUT); mixed {best['overrides'] or best['weights']} "
          f"{100 * best['accuracy']:.2f} % ({best['LUT']:.0f} LUT), {len(history)} evaluations, "
          f"{search['seconds']:.0f} s", flush=True)
    if args.confirm_images and bu and best["LUT"] <= budget:
        result["confirmation"] = _confirm(task, bu, best, args.confirm_images)
    return result


def _confirm(task, best_uniform, mixed, images):
    """Both winners re-measured on ``images`` test images the search never saw (right after the search's images):
    the search picks among many configurations on the same images, so its margin over uniform is biased upwards."""
    rows = {}
    for name, row in (("best_uniform", best_uniform), ("mixed", mixed)):
        held = evaluate_point(dict(task, w=row["weights"], a=row["acts"], overrides=row.get("overrides") or {},
                                   image_offset=task["images"], images=images))
        if held.get("error"):
            raise ConfigError(f"held-out check of {name} ({row['weights']}, {row.get('overrides')}) failed: "
                              f"{held['error']}")
        rows[name] = held
    n = rows["mixed"]["images"]
    diff = rows["mixed"]["accuracy"] - rows["best_uniform"]["accuracy"]
    print(f"  {task['model']}: held-out images {task['images']}..{task['images'] + n}: best uniform "
          f"{100 * rows['best_uniform']['accuracy']:.2f} %, mixed {100 * rows['mixed']['accuracy']:.2f} % "
          f"({100 * diff:+.2f} %)", flush=True)
    return {"image_offset": task["images"], "images": n, "best_uniform_accuracy": rows["best_uniform"]["accuracy"],
            "mixed_accuracy": rows["mixed"]["accuracy"], "mixed_beats_uniform": diff > 0}


def _acc(r):
    if not r:
        return "-"
    return (f"{r['weights']} {100 * r['accuracy']:.2f} ± {100 * r['accuracy_std']:.2f} % ({r['seeds']} seeds), "
            f"{r['LUT']:.0f} LUT / {r['DSP']:.0f} DSP")


def main(argv=None):
    args = parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    try:
        tasks = tasks_for(args)
        rows = run_points(tasks, jobs=args.jobs)
    except MinifinnError as err:
        print(f"dse.py: {err}", file=sys.stderr)
        return 2
    try:
        run = {"seconds": round(time.time() - t0), "argv": argv or sys.argv[1:],
               "point_seconds": round(sum(r.get("seconds", 0) for r in rows if "error" not in r))}
        rows = write_outputs(rows, args.output_dir, run)
    except MinifinnError as err:
        print(f"dse.py: {err}", file=sys.stderr)
        return 2
    if args.mixed:
        try:
            _mixed(args, tasks, rows)
        except MinifinnError as err:
            print(f"dse.py: {err}", file=sys.stderr)
            return 2
    print(f"{len(rows)} points ({len(tasks)} runs over formats and seeds) in {time.time() - t0:.0f} s; wrote "
          f"{args.output_dir}/dse_points.csv, pareto.png, index.html")
    for model, entries in paper_table(rows, compare).items():
        for e in entries:
            i, f = e["int"], e["minifloat"]
            ratio = f"{e['mac_ratio']:.2f}" if e["mac_ratio"] else "-"
            print(f"  {model} {e['bits']} bits: integer {_acc(i)}  |  minifloat {_acc(f)}  |  minifloat "
                  f"{e['verdict'] or '-'}; MAC LUT ratio (LUT-only) {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
