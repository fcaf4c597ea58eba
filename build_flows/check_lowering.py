"""Lowering check: QONNX golden vs the lowered exact graph (passes.lower_qonnx) over number formats.

    python build_flows/check_lowering.py                      # MLP and CNN on digits, the issue's format grid
    python build_flows/check_lowering.py --model cnn --data fashion --images 1000 --output-dir out/lowering

For each model: train the float model once, then for every format spec: PTQ (calibration), QONNX export, lowering,
and ``passes.compare.compare_lowered`` on ``--images`` images: differing activation codes per quantizer tensor,
argmax agreement, accuracy of the QONNX golden and of the lowered graph. Writes ``lowering.json`` and
``lowering.md`` into ``--output-dir``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from compiler.data import load_data  # noqa: E402
from compiler.export import export_qonnx_model  # noqa: E402
from compiler.finn_env import ensure_finn_offline  # noqa: E402
from compiler.ptq import quantize_ptq  # noqa: E402
from compiler.training import evaluate, train  # noqa: E402
from compiler.zoo import build_model  # noqa: E402
from compiler.zoo.configs import MODEL_CONFIGS  # noqa: E402
from passes import lower_qonnx  # noqa: E402
from passes.compare import compare_lowered  # noqa: E402

FORMAT_GRID = ["fp:e4m3", "fp:e3m2", "fp:e2m3", "fp:e2m1", "int:8", "int:4",
               "w=fp:e2m1,a=fp:e3m2", "w=int:4,a=fp:e4m3", "w=fp:e3m2,a=int:8"]


def check_model(model_name, data="digits", formats=FORMAT_GRID, images=1000, epochs=None, tmp_dir=None,
                progress=True):
    """Rows (one per format) of the lowering comparison for one zoo model."""
    ensure_finn_offline()
    torch.set_num_threads(1)
    xtr, ytr, xte, yte = load_data(data)
    cfg = MODEL_CONFIGS[data][model_name]
    torch.manual_seed(0)  # the float model's initial weights: a new process starts torch at a random seed
    float_model = build_model(model_name, "float", **cfg)
    epochs = epochs or (15 if data == "digits" else 2)
    train(float_model, xtr, ytr, epochs=epochs, progress=progress)
    float_acc = evaluate(float_model, xte, yte)
    # comparison images: the test set first, then training images when the test set is smaller than asked
    x_cmp = np.concatenate([xte, xtr])[:images]
    y_cmp = np.concatenate([yte, ytr])[:images]
    rows = []
    tmp = Path(tmp_dir or tempfile.mkdtemp(prefix="minifinn_lowering_"))
    for spec in formats:
        t0 = time.perf_counter()
        qmodel = build_model(model_name, spec, **cfg)
        quantize_ptq(float_model, qmodel, torch.as_tensor(xtr[:512]), techniques=("calibrate",))
        path = tmp / f"{model_name}_{spec.replace(':', '').replace(',', '_').replace('=', '')}.onnx"
        qonnx = export_qonnx_model(qmodel, torch.as_tensor(xtr[:1]), path)
        lowered = lower_qonnx(qonnx)
        report = compare_lowered(qonnx, lowered, x_cmp, labels=y_cmp)
        n_test = min(len(xte), images)
        row = {
            "model": model_name, "data": data, "spec": spec, "float_accuracy": float_acc,
            "brevitas_accuracy": evaluate(qmodel, xte[:n_test], yte[:n_test]),
            "seconds": time.perf_counter() - t0, **report,
        }
        rows.append(row)
        if progress:
            print(f"{model_name:4s} {spec:22s} codes differing {row['differing_codes']}/{row['codes']} "
                  f"({100 * row['differing_fraction']:.4f} %) in {row['tensors_with_differences']}/"
                  f"{len(row['tensors'])} tensors, argmax {100 * row['argmax_agreement']:.2f} %, acc QONNX "
                  f"{100 * row['accuracy_qonnx']:.2f} % lowered {100 * row['accuracy_lowered']:.2f} %", flush=True)
    return rows


def to_markdown(rows):
    lines = ["| model | formats | differing codes | tensors with differences | argmax agreement | acc QONNX | "
             "acc lowered |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['spec']} | {r['differing_codes']} / {r['codes']} "
            f"({100 * r['differing_fraction']:.4f} %) | {r['tensors_with_differences']} / {len(r['tensors'])} | "
            f"{100 * r['argmax_agreement']:.2f} % | {100 * r['accuracy_qonnx']:.2f} % | "
            f"{100 * r['accuracy_lowered']:.2f} % |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="check_lowering.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", choices=["mlp", "cnn", "vit"],
                   help="zoo model (repeatable; default mlp and cnn)")
    p.add_argument("--data", choices=["digits", "fashion"], default="digits")
    p.add_argument("--formats", nargs="+", default=FORMAT_GRID, help="format specs, e.g. fp:e3m2 'w=fp:e2m1,a=int:8'")
    p.add_argument("--images", type=int, default=1000, help="images compared (default 1000)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--output-dir", default="out/lowering")
    args = p.parse_args(argv)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for model in args.model or ["mlp", "cnn"]:
        rows += check_model(model, args.data, args.formats, args.images, args.epochs, tmp_dir=out)
    (out / "lowering.json").write_text(json.dumps(rows, indent=1))
    (out / "lowering.md").write_text(to_markdown(rows))
    print(to_markdown(rows))
    print(f"wrote {out / 'lowering.json'} and {out / 'lowering.md'}")
    bad = [r for r in rows if r["differing_fraction"] >= 1e-3 or r["argmax_agreement"] < 0.995]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
