"""Benchmark (``make bench``): QONNX -> estimates + codegen for the Fashion-MNIST-sized MLP and CNN, per-step times."""

import json
import time

import pytest
import torch

import compiler.steps  # noqa: F401
from compiler.config import BuildConfig
from compiler.export import export_qonnx_model
from compiler.ptq import quantize_ptq
from compiler.runner import run_build
from compiler.zoo import build_model


@pytest.mark.bench
@pytest.mark.parametrize("spec", ["fp:e3m2", "int:4"])
def test_bench_mlp_qonnx_to_codegen(tmp_path, spec):
    torch.manual_seed(0)
    cfg_model = dict(in_features=784, hidden=(256, 128))
    f, q = build_model("mlp", "float", **cfg_model), build_model("mlp", spec, **cfg_model)
    quantize_ptq(f, q, torch.randn(256, 1, 28, 28))
    qonnx = export_qonnx_model(q, torch.randn(1, 1, 28, 28), tmp_path / "mlp.onnx")
    cfg = BuildConfig(output_dir=str(tmp_path / "build"), stop_step="step_hw_codegen")
    t0 = time.perf_counter()
    run_build(qonnx, cfg, progress=False)
    seconds = time.perf_counter() - t0
    times = json.loads((tmp_path / "build" / "time_per_step.json").read_text())
    print(f"\nMLP 784-256-128-10 {spec}: QONNX -> estimates + codegen in {seconds:.1f} s; per step: "
          + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()))
    assert seconds < 60


@pytest.mark.bench
@pytest.mark.parametrize("spec", ["fp:e3m2", "int:4"])
def test_bench_cnn_qonnx_to_codegen(tmp_path, spec):
    """The cnn.py model (width 16, 28x28, residual block): lowering, NHWC, HW conversion, partition, folding for
    Pynq-Z2, estimate reports and HDL generation."""
    torch.manual_seed(0)
    cfg_model = dict(width=16, image_size=28)
    f, q = build_model("cnn", "float", **cfg_model), build_model("cnn", spec, **cfg_model)
    quantize_ptq(f, q, torch.randn(64, 1, 28, 28))
    qonnx = export_qonnx_model(q, torch.randn(1, 1, 28, 28), tmp_path / "cnn.onnx")
    cfg = BuildConfig(output_dir=str(tmp_path / "build"), stop_step="step_hw_codegen")
    t0 = time.perf_counter()
    run_build(qonnx, cfg, progress=False)
    seconds = time.perf_counter() - t0
    times = json.loads((tmp_path / "build" / "time_per_step.json").read_text())
    perf = json.loads((tmp_path / "build" / "report" / "estimate_network_performance.json").read_text())
    print(f"\nCNN w16 28x28 {spec}: QONNX -> estimates + codegen in {seconds:.1f} s "
          f"({perf['estimated_throughput_fps']:.0f} FPS est.); per step: "
          + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()))
    assert seconds < 60


@pytest.mark.bench
def test_bench_deit_tiny_estimates_for_u250(tmp_path):
    """vit_tiny.py --deit: a DeiT-tiny-sized ViT (224x224x3, patch 16, dim 192, depth 12, heads 3) from PyTorch to
    U250 estimates (PTQ, export, lowering, hardware conversion, one partition, folding, reports) in < 5 minutes."""
    from build_flows import vit_tiny

    t0 = time.perf_counter()
    assert vit_tiny.main(["--deit", "--threads", "1", "--output-dir", str(tmp_path)]) == 0
    seconds = time.perf_counter() - t0
    est = json.loads((tmp_path / "report" / "estimates.json").read_text())
    u250 = est["boards"]["U250"]
    print(f"\nDeiT-tiny-sized ViT -> U250 estimates in {seconds:.0f} s: {u250['fps']:.0f} FPS, LUT {u250['LUT']:.0f}, "
          f"BRAM_18K {u250['BRAM_18K']:.0f}, URAM {u250['URAM']:.0f}; times {est['times']}")
    assert u250["fps"] > 0 and seconds < 300
