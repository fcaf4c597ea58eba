"""Vendor code paths without the vendor tools: Vitis HLS C++ + tcl and Vivado IPI tcl are generated and checked as
far as this machine can (g++ syntax check, tcl structure, Icarus elaboration); the tool runs skip without them."""

import shutil
import subprocess
from pathlib import Path

import pytest
from qonnx.custom_op.registry import getCustomOp

import custom_ops  # noqa: F401
from compiler.numerics import IntFormat, MinifloatFormat
from custom_ops.examples import random_dynamic_mvau_model, random_mvau_model
from custom_ops.mac import ap_types_include_dir, hls_include_dir

PART = "xc7z020clg400-1"
HLS_DIR = Path(custom_ops.__file__).resolve().parent / "hls"


def _prepared(style, dynamic=False):
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    f = MinifloatFormat(3, 2)
    if dynamic:
        model, _, _ = random_dynamic_mvau_model(f, f, f, [2], 3, 8, 4, 2, 2, 0)
    else:
        model, _ = random_mvau_model(f, IntFormat(4), f, 16, 8, 2, 4, 0)
    getCustomOp(model.graph.node[0]).set_nodeattr("preferred_impl_style", style)
    model = model.transform(SpecializeLayers(PART)).transform(PrepareIP(PART, 5.0))
    node = model.graph.node[0]
    return model, node, getCustomOp(node)


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
@pytest.mark.parametrize("dynamic", [False, True])
def test_hls_ipgen_sources_compile_and_tcl_is_complete(dynamic):
    model, node, inst = _prepared("hls", dynamic)
    code_dir = Path(inst.get_nodeattr("code_gen_dir_ipgen"))
    top = code_dir / f"top_{node.name}.cpp"
    tcl = (code_dir / f"hls_syn_{node.name}.tcl").read_text()
    for needle in (f"set_top {node.name}", f"set_part {PART}", "create_clock -period 5.0", "csynth_design",
                   "export_design -format ip_catalog", str(top.name)):
        assert needle in tcl, needle
    assert "$" not in tcl.replace("$::", "")  # every template placeholder was filled
    text = top.read_text()
    assert "#pragma HLS INTERFACE axis port=in0_V" in text
    assert ("#pragma HLS INTERFACE axis port=in1_V" in text) == dynamic
    run = subprocess.run(["g++", "-std=c++14", "-fsyntax-only", f"-I{ap_types_include_dir()}",
                          f"-I{hls_include_dir()}", f"-I{HLS_DIR}", str(top)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs iverilog")
@pytest.mark.parametrize("dynamic", [False, True])
def test_rtl_ipi_tcl_and_verilog_elaborate(dynamic, tmp_path):
    model, node, inst = _prepared("rtl", dynamic)
    cmds = inst.code_generation_ipi()
    files = inst.get_rtl_file_list(abspath=True)
    assert all(Path(f).is_file() for f in files)
    assert sum(c.startswith("add_files") for c in cmds) == len(files)
    assert cmds[-1] == f"create_bd_cell -type module -reference {inst.get_verilog_top_module_name()} {node.name}"
    intf = inst.get_verilog_top_module_intf_names()
    assert [n for n, _ in intf["s_axis"]] == (["in0_V", "in1_V"] if dynamic else ["in0_V"])
    top = Path(inst.get_nodeattr("code_gen_dir_ipgen")) / f"{inst.get_verilog_top_module_name()}.v"
    port_text = top.read_text()
    for name, width in intf["s_axis"] + intf["m_axis"]:
        assert f"{name}_TDATA" in port_text
    run = subprocess.run(["iverilog", "-g2005", "-s", inst.get_verilog_top_module_name(), "-o",
                          str(tmp_path / "elab.vvp")] + files, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.mark.vivado
@pytest.mark.skipif(shutil.which("vitis_hls") is None, reason="Vitis HLS (vitis_hls) is not on PATH")
def test_hls_synthesis_with_vitis_hls():
    from finn.transformation.fpgadataflow.hlssynth_ip import HLSSynthIP

    model, node, inst = _prepared("hls")
    model = model.transform(HLSSynthIP())
    assert Path(getCustomOp(model.graph.node[0]).get_nodeattr("ipgen_path")).is_dir()
