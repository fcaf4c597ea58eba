"""Benchmark (``make bench``): hardware-exact accuracy of a ViT hardware graph, the per-image executor (qonnx
``execute_onnx`` image by image) against the batched one (compiler/batched_exec.py), in one run on the same images.

The graph is the flagship's (build_flows/vit_tiny.py: patch 7, dim 64, depth 4, heads 4, W/A E3M2, first/last E4M3)
built from its float checkpoint ``out/vit_tiny/vit_float.pt`` when present (else from fixed random weights: the
same ops and shapes), or the ``step_convert_to_hw.onnx`` named by ``MINIFINN_BENCH_HW_GRAPH``; on the first
``MINIFINN_BENCH_IMAGES`` (default 1,000) Fashion-MNIST test images (random images without the data set). Both
executors run in one process (``workers = 1``). The times, the speed-up and whether the predictions are identical
go to docs/results/bench/hw_accuracy.json, one entry per graph and image count.
"""

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from build_flows.vit_tiny import VIT
from compiler.batched_exec import DEFAULT_BATCH_SIZE
from compiler.data import load_fashion_mnist
from compiler.dse.cost import hardware_graph
from compiler.errors import DataMissingError
from compiler.export import export_qonnx_model
from compiler.hw_accuracy import hardware_logits, hardware_logits_per_image
from compiler.ptq import quantize_ptq
from compiler.training import load_checkpoint
from compiler.zoo import build_model, load_float_state_dict
from passes import lower_qonnx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results" / "bench" / "hw_accuracy.json"
CHECKPOINT = ROOT / "out" / "vit_tiny" / "vit_float.pt"
SPEC = "w=fp:e3m2,a=fp:e3m2,first=fp:e4m3,last=fp:e4m3"


def _images(n):
    try:
        x, y = load_fashion_mnist("test")
        return x[:n], y[:n], "Fashion-MNIST test"
    except DataMissingError:
        rng = np.random.default_rng(0)
        return rng.normal(size=(n, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, n), "random"


def _flagship_graph(tmp_path, x_calib):
    """The flagship's hardware graph (``step_convert_to_hw``) and where its float weights came from."""
    torch.manual_seed(0)
    f, q = build_model("vit", "float", **VIT.model_cfg), build_model("vit", SPEC, **VIT.model_cfg)
    weights = "random (seed 0)"
    if CHECKPOINT.is_file():
        load_float_state_dict(f, load_checkpoint(CHECKPOINT)[0])
        weights = str(CHECKPOINT.relative_to(ROOT))
    quantize_ptq(f, q, torch.from_numpy(x_calib))
    qonnx = export_qonnx_model(q, torch.from_numpy(x_calib[:1]), tmp_path / "vit.qonnx.onnx")
    hw, _ = hardware_graph(lower_qonnx(qonnx))
    path = tmp_path / "step_convert_to_hw.onnx"
    hw.save(str(path))
    return path, f"flagship ViT built from float weights {weights}, {SPEC}"


@pytest.mark.bench
def test_bench_batched_hardware_accuracy_against_the_per_image_executor(tmp_path):
    n = int(os.environ.get("MINIFINN_BENCH_IMAGES", "1000"))
    x, y, data = _images(n)
    given = os.environ.get("MINIFINN_BENCH_HW_GRAPH")
    path, graph = (Path(given), f"given: {given}") if given else _flagship_graph(tmp_path, x[:256])
    t0 = time.perf_counter()
    old = hardware_logits_per_image(path, x, workers=1, progress=True)
    per_image_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    new = hardware_logits(path, x, batch_size=DEFAULT_BATCH_SIZE, workers=1, progress=True)
    batched_s = time.perf_counter() - t0
    same_predictions = bool(np.array_equal(old.argmax(1), new.argmax(1)))
    entry = {
        "graph": graph, "images": int(len(x)), "data": data, "batch_size": DEFAULT_BATCH_SIZE, "workers": 1,
        "per_image_s": round(per_image_s, 2), "batched_s": round(batched_s, 2),
        "speedup": round(per_image_s / batched_s, 1),
        "per_image_images_per_s": round(len(x) / per_image_s, 1), "batched_images_per_s": round(len(x) / batched_s, 1),
        "predictions_identical": same_predictions, "logits_identical": bool(np.array_equal(old, new)),
        "hardware_exact_accuracy": float(np.mean(new.argmax(1) == y)) if data != "random" else None,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results[f"{'given' if given else 'vit_tiny'}@{len(x)}"] = entry
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"\nhardware-exact accuracy on {len(x)} images ({graph}): per image {per_image_s:.1f} s, batched "
          f"{batched_s:.1f} s, {entry['speedup']}x; predictions identical: {same_predictions}")
    assert same_predictions and entry["logits_identical"]
    assert entry["speedup"] >= 5
