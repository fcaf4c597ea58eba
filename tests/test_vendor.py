"""Vendor steps (compiler/vendor.py) on a machine without Vivado / Vitis: what they generate, the one clear
VendorToolMissing message, the continue script and command; tool detection with a fake ``vivado``."""

import json
import os
import re
import shlex
import shutil
import stat

import numpy as np
import pytest
from qonnx.custom_op.registry import getCustomOp

import compiler.steps  # noqa: F401  (registers the steps)
from compiler.build_cmd import main as build_main
from compiler.config import BuildConfig
from compiler.errors import MinifinnError
from compiler.numerics import IntFormat, MinifloatFormat
from compiler.runner import DEFAULT_STEPS, run_build
from compiler.vendor import (
    VENDOR_STEPS,
    VendorToolMissing,
    bitstream_steps,
    find_vendor_tools,
    step_deployment_package,
    step_hw_ipgen,
    step_synthesize_bitfile,
)
from custom_ops.examples import random_mvau_model

NO_TOOLS_PATH = os.pathsep.join(["/usr/bin", "/bin"])
needs_no_vendor_tools = pytest.mark.skipif(
    any(shutil.which(t, path=NO_TOOLS_PATH) for t in ("vivado", "vitis_hls", "v++")),
    reason="a vendor tool is installed in /usr/bin or /bin")


def _fake_tool(directory, name, version_line):
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '****** {version_line}'\necho '  **** SW Build 1 on today'\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_find_vendor_tools_detects_fake_tools_on_path(tmp_path, monkeypatch):
    vivado = _fake_tool(tmp_path, "vivado", "Vivado v2024.2 (64-bit)")
    hls = _fake_tool(tmp_path, "vitis_hls", "Vitis HLS - High-Level Synthesis from C, C++ and OpenCL v2024.2")
    monkeypatch.setenv("PATH", os.pathsep.join([str(tmp_path), NO_TOOLS_PATH]))
    tools = find_vendor_tools()
    assert tools["vivado"] == {"path": str(vivado), "version": "****** Vivado v2024.2 (64-bit)"}
    assert tools["vitis_hls"]["path"] == str(hls) and tools["vitis_hls"]["version"].endswith("v2024.2")
    assert "v++" not in tools
    monkeypatch.setenv("PATH", str(tmp_path / "nothing_here"))
    assert find_vendor_tools() == {}


def test_bitstream_steps_append_the_vendor_steps_once():
    steps = bitstream_steps()
    assert steps[-len(VENDOR_STEPS):] == list(VENDOR_STEPS) and len(steps) == len(set(steps))
    assert steps[:-len(VENDOR_STEPS)] == [s for s in DEFAULT_STEPS if s not in VENDOR_STEPS]
    assert "step_make_driver" in DEFAULT_STEPS  # the driver needs no tool: every default build writes it


def _mlp_build(tmp_path):
    from test_build_steps import _cfg, _qonnx

    cfg = _cfg(tmp_path, steps=bitstream_steps())
    return _qonnx(tmp_path), cfg


@needs_no_vendor_tools
def test_full_build_without_vivado_generates_the_handoff_and_stops_with_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", NO_TOOLS_PATH)
    qonnx, cfg = _mlp_build(tmp_path)
    out = tmp_path / "build"
    with pytest.raises(VendorToolMissing) as info:
        run_build(qonnx, cfg, progress=False)
    msg = str(info.value)
    assert msg.startswith("step step_create_stitched_ip: vivado not on PATH")
    assert f"bash {out / 'build_vivado.sh'}" in msg and "--start-step step_create_stitched_ip" in msg
    # RTL layers need no tool for IP generation: step_hw_ipgen ran and its model was saved for the resume
    assert (out / "intermediate_models" / "step_hw_ipgen.onnx").is_file()
    manifest = json.loads((out / "hw_sources" / "manifest.json").read_text())
    kinds = [v["op_type"] for v in manifest.values()]
    assert kinds.count("MinifloatMVAU_rtl") == 3 and all(v["backend"] == "rtl" for v in manifest.values())
    # the hidden layers' per-channel requantizers stand alone after their MVAUs
    assert kinds.count("MinifloatThresholding_rtl") == 2
    # step_insert_stream_plumbing: FINN's FIFOs before, between and after the layers and around width converters
    assert kinds.count("StreamingFIFO_rtl") >= 6 and set(kinds) <= {
        "MinifloatMVAU_rtl", "MinifloatThresholding_rtl", "StreamingFIFO_rtl", "StreamingDataWidthConverter_rtl"}
    for layer, entry in manifest.items():
        assert any(f.endswith(".v") for f in entry["files"])
        assert all((out / "hw_sources" / layer / f).is_file() for f in entry["files"])
    tcl = (out / "stitched_ip" / "make_project.tcl").read_text()
    assert "create_project" in tcl and "xc7z020clg400-1" in tcl and all(layer in tcl for layer in manifest)
    settings = json.loads((out / "driver" / "settings.json").read_text())["driver_information"]
    assert settings["io_shape_dict"]["ishape_normal"] == [[1, 64]] and settings["platform"] == "zynq-iodma"
    assert settings["io_shape_dict"]["input_scales"][0] > 0  # the host quantizer's scale from the parent model
    script = (out / "build_vivado.sh").read_text()
    assert os.access(out / "build_vivado.sh", os.X_OK)
    exec_line = next(ln for ln in script.splitlines() if ln.startswith("exec "))
    assert "--start-step step_create_stitched_ip" in exec_line and "for tool in vivado vitis_hls; do" in script
    saved = json.loads((out / "build_config.json").read_text())
    assert saved["output_dir"] == "." and saved["steps"] == bitstream_steps() and saved["start_step"] is None

    # the command of the script, run from the output directory, resumes at the vendor step (not from scratch) and
    # ends with the same one-line message: exit code 2, no traceback
    args = shlex.split(exec_line)[2:-1]  # drop 'exec $MINIFINN' and '"$@"'
    assert args[0] == "build"
    monkeypatch.chdir(out)
    capsys.readouterr()
    assert build_main(args[1:]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minifinn build: step step_create_stitched_ip: vivado not on PATH")
    assert "Traceback" not in err and "step_lower" not in err
    times = json.loads((out / "time_per_step.json").read_text())
    assert "step_hw_ipgen" in times and "step_create_stitched_ip" not in times


def _hls_model(tmp_path, style="hls"):
    fa = MinifloatFormat(3, 2)
    model, _ = random_mvau_model(fa, IntFormat(4), fa, 16, 8, 2, 4, 0)
    getCustomOp(model.graph.node[0]).set_nodeattr("preferred_impl_style", style)
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    return model.transform(SpecializeLayers("xc7z020clg400-1"))


@needs_no_vendor_tools
def test_hls_ipgen_without_vitis_hls_exports_sources_and_names_the_tool(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", NO_TOOLS_PATH)
    model = _hls_model(tmp_path)
    cfg = BuildConfig(output_dir=str(tmp_path / "out"))
    with pytest.raises(VendorToolMissing, match=r"^vitis_hls not on PATH, so step_hw_ipgen cannot run") as info:
        step_hw_ipgen(model, cfg)
    assert info.value.tools == ("vitis_hls",) and info.value.command.endswith("build_vivado.sh")
    assert "no stitching script" not in str(info.value)  # the stitching preview belongs to later steps
    name = model.graph.node[0].name
    files = json.loads((tmp_path / "out" / "hw_sources" / "manifest.json").read_text())[name]["files"]
    assert f"top_{name}.cpp" in files and f"hls_syn_{name}.tcl" in files
    script = (tmp_path / "out" / "build_vivado.sh").read_text()
    assert "--start-step step_hw_ipgen" in script and "for tool in vitis_hls vivado; do" in script
    assert (tmp_path / "out" / "driver" / "driver.py").is_file()


@needs_no_vendor_tools
def test_alveo_bitfile_names_all_three_tools(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", NO_TOOLS_PATH)
    model = _hls_model(tmp_path, "rtl")
    cfg = BuildConfig(output_dir=str(tmp_path / "out"), board="U250")
    with pytest.raises(VendorToolMissing, match=r"^vivado and vitis_hls and v\+\+ not on PATH, so "
                                                r"step_synthesize_bitfile") as info:
        step_synthesize_bitfile(model, cfg)
    assert "stitched_ip/make_project.tcl" in str(info.value)
    assert "xcu250" in (tmp_path / "out" / "stitched_ip" / "make_project.tcl").read_text()
    settings = json.loads((tmp_path / "out" / "driver" / "settings.json").read_text())["driver_information"]
    assert settings["platform"] == "alveo"


@needs_no_vendor_tools
def test_deployment_package_without_bitfile(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", NO_TOOLS_PATH)
    model = _hls_model(tmp_path, "rtl")
    cfg = BuildConfig(output_dir=str(tmp_path / "out"))
    with pytest.raises(VendorToolMissing, match=r"holds no bitfile.*--start-step step_synthesize_bitfile"):
        step_deployment_package(model, cfg)
    assert (tmp_path / "out" / "deploy" / "driver" / "driver.py").is_file()
    # with the tools present but no bitfile built, the error says which step is missing
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("vivado", "vitis_hls"):
        _fake_tool(fake, tool, f"{tool} v2024.2")
    monkeypatch.setenv("PATH", os.pathsep.join([str(fake), NO_TOOLS_PATH]))
    with pytest.raises(MinifinnError, match="run step_synthesize_bitfile before step_deployment_package") as info:
        step_deployment_package(model, cfg)
    assert not isinstance(info.value, VendorToolMissing)
    # a bitfile present: it lands in deploy/bitfile next to the driver
    (tmp_path / "out" / "bitfile").mkdir()
    (tmp_path / "out" / "bitfile" / "finn-accel.bit").write_bytes(np.arange(8, dtype=np.uint8).tobytes())
    step_deployment_package(model, cfg)
    assert (tmp_path / "out" / "deploy" / "bitfile" / "finn-accel.bit").read_bytes() == bytes(range(8))


def test_vendor_tool_missing_survives_the_runner_rewrap():
    """The runner re-raises MinifinnErrors as type(err)(f"step {name}: {err}"): the class takes one message."""
    err = VendorToolMissing("x not on PATH", tools=("x",), command="bash b.sh")
    again = type(err)(f"step s: {err}")
    assert str(again) == "step s: x not on PATH" and again.tools == () and re.match("step s", str(again))
