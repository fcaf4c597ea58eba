"""The paper's networks (build_flows/paper_nets.py): reduced torchvision ResNet-18 and MobileNetV2 (torchvision's own
classes, narrow, small inputs) quantized with ``quantize_model``, built and verified bit for bit (every node in RTL
simulation == its Python model, the stitched partition's simulation == the Python dataflow model); the full
networks at 224x224 to U250 estimates in the slow suite."""

import json

import numpy as np
import pytest
import torch
from qonnx.core.modelwrapper import ModelWrapper

import compiler.steps  # noqa: F401  (registers the steps)
from build_flows import paper_nets
from build_flows.paper_nets import torchvision_network
from compiler.config import BuildConfig
from compiler.export import export_qonnx_model
from compiler.ptq import quantize_model
from compiler.runner import run_build


def _build_and_verify(arch, size, fmt, tmp_path, images=1):
    torch.manual_seed(0)
    model = torchvision_network(arch, size, 10, reduced=True)
    calib = torch.randn(8, 3, size, size)
    qonnx = export_qonnx_model(quantize_model(model, fmt, fmt, calib=calib), calib[:1], tmp_path / f"{arch}.onnx")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(images, 3, size, size)).astype(np.float32))
    # U250: the fastest folding fits, so the stitched simulation runs few cycles per frame
    cfg = BuildConfig(output_dir=str(tmp_path / "build"), board="U250", verify_input_npy=str(tmp_path / "x.npy"),
                      stop_step="step_verify")
    built = run_build(qonnx, cfg, progress=False)
    ver = json.loads((tmp_path / "build" / "report" / "verification.json").read_text())
    assert ver["passed"] and ver["stitched_rtlsim"]["passed"] == images and ver["stitched_rtlsim"]["failed"] == 0
    # the lowered graph vs the hardware graph is reported, not required equal: a requantizer by conversion (16-bit
    # scale mantissas) may round where the lowered graph's exact thresholds do not (compiler/steps.py, step_verify)
    assert ver["lowered_vs_hardware"]["codes"] > 0
    assert all(v["failed"] == 0 and v["mode"] == "rtlsim" for v in ver["nodes"].values())
    parent = ModelWrapper(str(tmp_path / "build" / "intermediate_models" / "dataflow_parent.onnx"))
    # one dataflow partition; only the input quantizer, its layout change and the output scaling stay on the host
    assert [n.op_type for n in parent.graph.node] == ["QuantizeToFormat", "Transpose", "StreamingDataflowPartition",
                                                      "Dequantize"]
    return {n.op_type for n in built.graph.node}


def test_reduced_resnet18_builds_and_verifies_bit_for_bit(tmp_path):
    """Stem 7x7/2 conv, overlapping padded 3x3/2 max pool, BasicBlocks with residual adds and downsampling 1x1/2
    convolutions, global average pooling into the 8-bit head: W/A E4M3, 48x48 input."""
    ops = _build_and_verify("resnet18", 48, "fp:e4m3", tmp_path)
    assert {"MinifloatConvInpGen_rtl", "MinifloatMaxPool_rtl", "MinifloatMVAU_rtl", "MinifloatAdd_rtl",
            "MinifloatGlobalAccPool_rtl"} <= ops


def test_reduced_mobilenet_v2_builds_and_verifies_bit_for_bit(tmp_path):
    """Inverted residuals: 1x1 expansion, depthwise 3x3 (MinifloatVVAU), 1x1 projection, the residual add; the
    1280-channel last convolution and pooling into the head: W/A E3M2, 32x32 input."""
    ops = _build_and_verify("mobilenet_v2", 32, "fp:e3m2", tmp_path)
    assert {"MinifloatVVAU_rtl", "MinifloatMVAU_rtl", "MinifloatAdd_rtl", "MinifloatGlobalAccPool_rtl"} <= ops


def test_flags_are_checked_before_anything_runs(capsys):
    with pytest.raises(SystemExit) as exc:
        paper_nets.parse_args(["--arch", "resnet18", "--weights", "fp8", "--input-size", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--weights 'fp8'" in err and "--input-size must be >= 1" in err
    with pytest.raises(SystemExit):
        paper_nets.parse_args(["--arch", "resnet50"])


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
@pytest.mark.parametrize("fmt", ["fp:e4m3", "fp:e3m2"])
def test_paper_network_at_224_compiles_to_u250_estimates(arch, fmt, tmp_path, capsys):
    assert paper_nets.main(["--arch", arch, "--weights", fmt, "--acts", fmt, "--output-dir", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["estimates"]["fps"] > 0 and summary["times"]["total_s"] < 600
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(f"{arch}: LUT ")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["fp:e4m3", "fp:e3m2"])
def test_vit_b_32_at_224_compiles_to_u250_estimates_with_weights_off_chip(fmt, tmp_path, capsys):
    """ViT-B/32 (88 M parameters): every node maps, the weights that do not fit go off chip, estimates in < 10 min
    (measured 484 s for E4M3 on this machine)."""
    assert paper_nets.main(["--arch", "vit_b_32", "--weights", fmt, "--acts", fmt, "--output-dir", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["estimates"]["fps"] > 0 and summary["times"]["total_s"] < 600
    assert summary["estimates"]["URAM"] <= 1024  # 80 % of the U250's 1,280
    report = (tmp_path / "build" / "report" / "summary.md").read_text()
    assert "(off chip)" in report
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("vit_b_32: LUT ")
