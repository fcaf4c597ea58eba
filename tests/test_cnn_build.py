"""The CNN through the build: channels-last layout, sliding windows and pooling in hardware, one dataflow partition,
FIFO sizing and the stitched Icarus simulation of the whole partition."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

import compiler.steps  # noqa: F401  (registers the steps)
from compiler.config import BuildConfig
from compiler.errors import ConfigError
from compiler.export import export_qonnx_model
from compiler.ptq import quantize_ptq
from compiler.runner import run_build
from compiler.stitched_sim import StitchedSimError, run_stitched
from compiler.zoo import build_model
from passes import lower_qonnx
from passes.nhwc import ConvertToNHWC


def _cnn_qonnx(tmp_path, spec="fp:e3m2", seed=0, **cfg):
    torch.manual_seed(seed)
    cfg = dict(dict(width=8, image_size=8), **cfg)
    f, q = build_model("cnn", "float", **cfg), build_model("cnn", spec, **cfg)
    quantize_ptq(f, q, torch.randn(64, 1, 8, 8))
    return export_qonnx_model(q, torch.randn(1, 1, 8, 8), tmp_path / "cnn.onnx")


def _run(model, x):
    return execute_onnx(model, {model.graph.input[0].name: x})[model.graph.output[0].name]


@pytest.mark.parametrize("spec,cfg", [("fp:e3m2", {}), ("int:4", {"global_pool": "flatten"}),
                                      ("w=fp:e2m1,a=fp:e4m3", {"global_pool": "flatten"})])
def test_nhwc_removes_every_inner_transpose_and_is_exact(spec, cfg, tmp_path):
    low = lower_qonnx(_cnn_qonnx(tmp_path, spec, **cfg))
    nhwc = low.transform(ConvertToNHWC())
    transposes = [n for n in nhwc.graph.node if n.op_type == "Transpose"]
    assert len(transposes) == 1  # only the input's NCHW -> NHWC, on the host side
    assert nhwc.find_producer(transposes[0].input[0]).op_type == "QuantizeToFormat"
    assert "MaxPool" not in [n.op_type for n in nhwc.graph.node]
    xs = np.random.default_rng(3).normal(size=(4, 1, 1, 8, 8)).astype(np.float32)
    for x in xs:
        assert np.array_equal(_run(low, x), _run(nhwc, x))


def _build(tmp_path, spec="fp:e3m2", images=2, **kw):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(images, 1, 8, 8)).astype(np.float32))
    cfg = BuildConfig(output_dir=str(tmp_path / "build"), verify_input_npy=str(tmp_path / "x.npy"), **kw)
    model = run_build(_cnn_qonnx(tmp_path, spec), cfg, progress=False)
    return model, tmp_path / "build" / "report"


def test_cnn_build_is_one_partition_and_stitched_rtlsim_equals_python(tmp_path):
    # 8-bit first/last layers as cnn.py builds them: the output accumulator is wider than 32 bits (INT40)
    model, report = _build(tmp_path, spec="w=fp:e3m2,a=fp:e3m2,first=fp:e4m3,last=fp:e4m3")
    assert model.get_tensor_datatype(model.graph.output[0].name).bitwidth() > 32
    ops = {n.op_type for n in model.graph.node}
    assert {"MinifloatConvInpGen_rtl", "MinifloatMaxPool_rtl", "MinifloatGlobalAccPool_rtl", "MinifloatAdd_rtl",
            "MinifloatMVAU_rtl"} <= ops
    ver = json.loads((report / "verification.json").read_text())
    assert ver["passed"] and "whole_partition" not in ver  # all RTL: the stitched rung replaces the chained one
    assert ver["stitched_rtlsim"]["passed"] == 2 and ver["stitched_rtlsim"]["fifo_depths"] == "sized"
    assert all(v["failed"] == 0 and v["mode"] == "rtlsim" for v in ver["nodes"].values())
    sizing = json.loads((report / "fifo_sizing.json").read_text())
    assert sizing["sized"] and sizing["frame_cycles_deep"] == sizing["frame_cycles_sized"]
    # the residual skip edge buffers what the two sliding windows of the branch hold; every other edge is shallow
    assert max(sizing["depths"].values()) > 64 and sorted(sizing["depths"].values())[-2] <= 64
    # measured frame interval of the stitched pipeline == the estimated bottleneck cycles
    perf = json.loads((report / "estimate_network_performance.json").read_text())
    ends = sizing["frame_cycles_sized"]
    assert ends[1] - ends[0] == pytest.approx(perf["max_cycles"], rel=0.05)


def test_too_shallow_fifo_deadlock_is_reported_with_the_full_fifo(tmp_path):
    _build(tmp_path, images=1, fifo_sizing="none")
    build = tmp_path / "build"
    model = ModelWrapper(str(build / "intermediate_models" / "step_verify.onnx"))
    sizing = json.loads((build / "report" / "fifo_sizing.json").read_text())
    assert sizing == {"sized": False, "reason": "fifo_sizing = 'none'"}
    frame = np.load(tmp_path / "x.npy")[:1]
    from compiler.steps import _partition_inputs

    cfg = BuildConfig(output_dir=str(build), verify_input_npy=str(tmp_path / "x.npy"))
    frames = _partition_inputs(cfg, frame)
    with pytest.raises(StitchedSimError, match="full FIFOs: e"):
        run_stitched(model, frames * 2, tmp_path / "sim", default_depth=2)


def test_bad_fifo_config_is_one_clear_error():
    with pytest.raises(ConfigError, match="fifo_sizing 'auto' is not one of"):
        BuildConfig(fifo_sizing="auto")


def test_vendor_plumbing_inserts_finn_forks_width_converters_and_sized_fifos(tmp_path):
    """step_insert_stream_plumbing (first vendor step, needs no tool): FINN's DuplicateStreams for the residual fork,
    StreamingDataWidthConverter where words differ, StreamingFIFO with the simulated depths; PrepareIP generates
    their sources."""
    from qonnx.custom_op.registry import getCustomOp

    from compiler.vendor import step_insert_stream_plumbing

    model, report = _build(tmp_path)
    depths = json.loads((report / "fifo_sizing.json").read_text())["depths"]
    cfg = BuildConfig(output_dir=str(tmp_path / "build"))
    plumbed = step_insert_stream_plumbing(model, cfg)
    ops = [n.op_type for n in plumbed.graph.node]
    assert ops.count("DuplicateStreams_hls") == 1  # the residual block's skip
    fifos = [getCustomOp(n) for n in plumbed.graph.node if n.op_type == "StreamingFIFO_rtl"]
    assert sorted(f.get_nodeattr("depth") for f in fifos)[-1] == max(depths.values())
    widths_ok = all(getCustomOp(plumbed.find_producer(n.input[0])).get_outstream_width() ==
                    getCustomOp(n).get_instream_width()
                    for n in plumbed.graph.node if plumbed.find_producer(n.input[0]) is not None
                    and n.op_type != "DuplicateStreams_hls")
    assert widths_ok
    assert all(getCustomOp(n).get_nodeattr("code_gen_dir_ipgen") for n in plumbed.graph.node)


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").is_file(),
                    reason="apt-get install dataset-fashion-mnist")
def test_cnn_flow_quick_runs_every_step_and_reuses_its_checkpoint(tmp_path, capsys):
    from build_flows import cnn

    args = ["--quick", "--verify-images", "2", "--output-dir", str(tmp_path)]
    assert cnn.main(args) == 0
    report = tmp_path / "report"
    for name in ("estimate_layer_resources.json", "estimate_network_performance.json", "fifo_sizing.json",
                 "verification.json", "accuracy.json", "summary.md"):
        assert (report / name).is_file(), name
    acc = json.loads((report / "accuracy.json").read_text())
    assert acc["hardware_exact"] == acc["qonnx_golden"] and acc["formats"]["first"] == "fp:e4m3"
    assert json.loads((report / "verification.json").read_text())["stitched_rtlsim"]["passed"] == 2
    assert (tmp_path / "driver" / "driver.py").is_file()
    capsys.readouterr()
    assert cnn.main(args) == 0 and "reusing" in capsys.readouterr().out
