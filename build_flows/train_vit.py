"""Train the zoo's tiny ViT on Fashion-MNIST (float, CPU) and optionally post-training-quantize it.

    python build_flows/train_vit.py --threads 1 --output-dir out/vit
    python build_flows/train_vit.py --threads 2 --ptq --output-dir out/vit

Default model: patch 7 (16 tokens), dim 64, depth 4, heads 4, MLP ratio 2, global average pooling
(138,890 parameters); AdamW + one-cycle schedule (lr 3e-3), weight decay 0.05, label smoothing 0.1, batch 128,
8 epochs. Measured: 89.27 % float test accuracy after 296 s of training with 1 thread (2-core machine shared with
other jobs).

Outputs in ``--output-dir``:

* ``vit_float.pt``: checkpoint (``compiler.training.save_checkpoint``) with the model config;
* ``metrics.json``: float test accuracy, training wall time, threads, per-epoch history, config;
* with ``--ptq``: ``ptq.json``: one row per W/A format (fp:e4m3, fp:e3m2, fp:e2m3, fp:e2m1, int:8, int:4; first and
  last layer at 8 bit: fp:e4m3 for minifloat runs, int:8 for integer runs) with test accuracy, drop vs float,
  techniques applied/skipped and PTQ wall time. Calibration uses ``--calib-size`` training images; with
  ``--ptq-search`` each format runs ``compiler.ptq.best_ptq`` over several technique sets (scored on a held-out
  part of the calibration images) instead of calibration only.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # allow `python build_flows/train_vit.py` without installation
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from compiler.data import load_fashion_mnist  # noqa: E402
from compiler.ptq import best_ptq, quantize_ptq  # noqa: E402
from compiler.training import evaluate, load_checkpoint, save_checkpoint, train  # noqa: E402
from compiler.zoo import QuantSpec, build_model  # noqa: E402
from compiler.zoo import eight_bit_format as edge_format  # noqa: E402  (first/last layer format of a run)

PTQ_FORMATS = ["fp:e4m3", "fp:e3m2", "fp:e2m3", "fp:e2m1", "int:8", "int:4"]
PTQ_SEARCH_SETS = {
    "calibrate": ("calibrate",),
    "calibrate+bias_correction": ("calibrate", "bias_correction"),
    "calibrate+gptq": ("calibrate", "gptq"),
    "calibrate+gptq+bias_correction": ("calibrate", "gptq", "bias_correction"),
}


def make_spec(fmt: str):
    """The zoo QuantSpec for W/A = ``fmt`` with first/last layer at the 8-bit format of its family."""
    return QuantSpec(weights=fmt, acts=fmt, first=edge_format(fmt), last=edge_format(fmt))


def model_config(args) -> dict:
    return {
        "image_size": 28,
        "in_channels": 1,
        "patch_size": args.patch,
        "dim": args.dim,
        "depth": args.depth,
        "heads": args.heads,
        "mlp_ratio": args.mlp_ratio,
        "num_classes": 10,
        "pooling": "gap",
    }


def run_ptq(args, float_model, cfg, x_train, y_train, x_test, y_test, float_acc, out: Path):
    rng = np.random.default_rng(args.seed)
    idx = rng.choice(len(x_train), size=min(args.calib_size, len(x_train)), replace=False)
    calib_x, calib_y = x_train[idx], y_train[idx]
    rows = []
    for fmt in args.ptq_formats:
        t0 = time.perf_counter()
        spec = make_spec(fmt)
        quant = build_model("vit", spec, **cfg)
        if args.ptq_search:
            quant, name, table = best_ptq(float_model, quant, calib_x, calib_y, technique_sets=PTQ_SEARCH_SETS)
            row = {"techniques": name, "search": table}
        else:
            rep = {}
            quantize_ptq(float_model, quant, calib_x, techniques=("calibrate",), report=rep)
            row = {"techniques": "+".join(rep["applied"]), "skipped": rep["skipped"]}
        acc = evaluate(quant, x_test, y_test)
        row = {
            "format": fmt,
            "first_last": edge_format(fmt),
            "spec": str(spec),
            "test_acc": acc,
            "drop_pp": 100.0 * (float_acc - acc),
            "seconds": time.perf_counter() - t0,
            **row,
        }
        rows.append(row)
        print(f"PTQ {fmt:8s} (first/last {edge_format(fmt)}): {100 * acc:.2f} % "
              f"(float {100 * float_acc:.2f} %, {row['techniques']}, {row['seconds']:.0f} s)", flush=True)
        (out / "ptq.json").write_text(json.dumps({"float_acc": float_acc, "calib_size": len(calib_x),
                                                  "rows": rows}, indent=2))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--patch", type=int, default=7)
    p.add_argument("--mlp-ratio", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    p.add_argument("--output-dir", type=Path, default=Path("out/vit"))
    p.add_argument("--data-dir", type=Path, default=None, help="directory with the Fashion-MNIST IDX files")
    p.add_argument("--checkpoint", type=Path, default=None, help="skip training, load this float checkpoint")
    p.add_argument("--ptq", action="store_true", help="post-training-quantize to every format in --ptq-formats")
    p.add_argument("--ptq-formats", nargs="+", default=PTQ_FORMATS)
    p.add_argument("--ptq-search", action="store_true", help="best_ptq over technique sets instead of calibrate")
    p.add_argument("--calib-size", type=int, default=2000)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)

    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    x_train, y_train = load_fashion_mnist("train", args.data_dir)
    x_test, y_test = load_fashion_mnist("test", args.data_dir)
    cfg = model_config(args)
    model = build_model("vit", "float", **cfg)
    n_params = sum(prm.numel() for prm in model.parameters())
    train_cfg = {k: getattr(args, k) for k in ("epochs", "lr", "batch_size", "weight_decay", "label_smoothing",
                                                "seed", "threads")}
    if args.checkpoint is not None:
        sd, saved_cfg, metrics = load_checkpoint(args.checkpoint)
        cfg = saved_cfg["model"]
        model = build_model("vit", "float", **cfg)
        model.load_state_dict(sd)
        acc = evaluate(model, x_test, y_test)
        print(f"loaded {args.checkpoint}: float test accuracy {100 * acc:.2f} %")
    else:
        print(f"ViT {cfg} ({n_params} parameters), training {args.epochs} epochs on {len(x_train)} images "
              f"with {args.threads} thread(s)", flush=True)
        torch.manual_seed(args.seed)
        model = build_model("vit", "float", **cfg)
        hist = train(model, x_train, y_train, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                     weight_decay=args.weight_decay, label_smoothing=args.label_smoothing, seed=args.seed,
                     threads=args.threads, progress=not args.no_progress)
        acc = evaluate(model, x_test, y_test)
        metrics = {"test_acc": acc, "train_seconds": hist["seconds"], "threads": args.threads,
                   "params": n_params, "history": {k: hist[k] for k in ("loss", "train_acc", "lr")},
                   "config": {"model": cfg, "train": train_cfg}}
        save_checkpoint(out / "vit_float.pt", model, {"model": cfg, "train": train_cfg},
                        {"test_acc": acc, "train_seconds": hist["seconds"]})
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        print(f"float test accuracy {100 * acc:.2f} % after {hist['seconds']:.0f} s of training "
              f"({args.threads} thread(s)); wrote {out / 'vit_float.pt'}, {out / 'metrics.json'}", flush=True)
    if args.ptq:
        run_ptq(args, model, cfg, x_train, y_train, x_test, y_test, acc, out)
        print(f"wrote {out / 'ptq.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
