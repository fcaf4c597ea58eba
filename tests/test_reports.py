"""Estimate reports (compiler/reports.py): FINN's files and shapes, numbers equal to the ops' own estimates."""

import json

import pytest
from qonnx.custom_op.registry import getCustomOp
from test_resource_folding import BOARD, CHAIN, _finn_mvau_threshold_graph, mvau_chain

from compiler.boards import Board
from compiler.errors import MinifinnError
from compiler.reports import REPORT_FILES, ReportError, write_estimate_reports
from passes.resource_folding import SetFoldingResourceAware

PERF_KEYS = {"critical_path_cycles", "max_cycles", "max_cycles_node_name", "estimated_throughput_fps",
             "estimated_latency_ns"}


def _load(path, name):
    return json.loads((path / "report" / name).read_text())


@pytest.mark.parametrize("clk_ns", [10.0, 4.0])
def test_reports_match_the_ops_own_estimates(tmp_path, clk_ns):
    model = mvau_chain(CHAIN).transform(SetFoldingResourceAware(BOARD.resources, clk_ns, target_fps=1e6))
    model, paths = write_estimate_reports(model, tmp_path, BOARD, clk_ns)
    assert set(paths) == set(REPORT_FILES)
    assert all((tmp_path / "report" / name).is_file() for name in REPORT_FILES)
    names = [n.name for n in model.graph.node]
    res = _load(tmp_path, "estimate_layer_resources.json")
    cycles = _load(tmp_path, "estimate_layer_cycles.json")
    perf = _load(tmp_path, "estimate_network_performance.json")
    ops = _load(tmp_path, "op_and_param_counts.json")
    alts = _load(tmp_path, "estimate_layer_config_alternatives.json")
    assert set(res) == set(names) | {"total"} and set(cycles) == set(names) and set(alts) == set(names)
    for node in model.graph.node:
        inst = getCustomOp(node)
        assert res[node.name] == inst.node_res_estimation(BOARD.part)
        assert cycles[node.name] == inst.get_exp_cycles()
        assert len(alts[node.name]) == 3  # ram_style block / distributed / ultra
    for key in ("LUT", "FF", "BRAM_18K", "URAM", "DSP"):
        assert res["total"][key] == pytest.approx(sum(res[n][key] for n in names))
    assert set(perf) == PERF_KEYS
    slowest = max(names, key=lambda n: cycles[n])
    assert perf["max_cycles"] == cycles[slowest] and perf["max_cycles_node_name"] == slowest
    assert perf["critical_path_cycles"] == sum(cycles.values())  # a chain: the path through every layer
    assert perf["estimated_throughput_fps"] == pytest.approx(1e9 / clk_ns / cycles[slowest])
    assert perf["estimated_throughput_fps"] >= 1e6
    assert perf["estimated_latency_ns"] == pytest.approx(sum(cycles.values()) * clk_ns)
    macs = sum(a * b for a, b in zip(CHAIN[:-1], CHAIN[1:]))
    assert ops["total"]["op_mac_e3m2_e3m2"] == macs and ops["total"]["param_weight_e3m2"] == macs
    assert set(ops) == set(names) | {"total"}
    assert all(getCustomOp(n).get_nodeattr("cycles_estimate") == cycles[n.name] for n in model.graph.node)


def test_summary_table_and_plot(tmp_path):
    model = mvau_chain(CHAIN).transform(SetFoldingResourceAware(BOARD.resources, 10.0, target_fps=1e6))
    model, paths = write_estimate_reports(model, tmp_path, BOARD, 10.0)
    text = paths["summary.md"].read_text()
    res = _load(tmp_path, "estimate_layer_resources.json")
    for node in model.graph.node:
        inst = getCustomOp(node)
        r = res[node.name]
        share = 100 * r["LUT"] / BOARD.resources["LUT"]
        row = (f"| {node.name} | MinifloatMVAU_rtl | e3m2 | e3m2 | e3m2 | {inst.get_nodeattr('PE')} | "
               f"{inst.get_nodeattr('SIMD')} | {inst.get_exp_cycles():,} | {r['LUT']:,} | {r['FF']:,} | 0 | 0 | 0 | "
               f"{share:.2f} % LUT |")
        assert row in text
    total_lut = res["total"]["LUT"]
    assert f"| LUT | {total_lut:,.0f} | 53,200 | {100 * total_lut / 53200:.2f} % | ok (80%: 42,560) |" in text
    assert "target 1,000,000 FPS, utilization limit 80%" in text
    assert "fits Pynq-Z2: **yes**; within the 80% utilization limit: yes" in text
    assert f"MACs per frame: {64 * 32 + 32 * 16 + 16 * 10:,}" in text
    png = paths["resources.png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    import matplotlib.image

    height, width = matplotlib.image.imread(paths["resources.png"]).shape[:2]
    assert width >= 600 and height >= 700


def test_summary_says_when_the_design_does_not_fit(tmp_path):
    model = mvau_chain(CHAIN)  # fully folded, no folding record
    tiny = Board("tiny", BOARD.part, "vivado_zynq", {"LUT": 1000, "FF": 100000, "BRAM_18K": 10, "URAM": 0,
                                                      "DSP": 10})
    _, paths = write_estimate_reports(model, tmp_path, tiny, 10.0, plot=False)
    text = paths["summary.md"].read_text()
    assert "fits tiny: **NO**" in text and "| LUT |" in text and "OVER" in text
    assert "resources.png" not in paths and "Folding:" not in text


def test_finn_ops_are_reported_too(tmp_path):
    model = _finn_mvau_threshold_graph().transform(SetFoldingResourceAware(BOARD.resources, 10.0, 1e6,
                                                                           fpgapart=BOARD.part))
    model, paths = write_estimate_reports(model, tmp_path, "Pynq-Z2", 10.0)
    res = _load(tmp_path, "estimate_layer_resources.json")
    assert set(res) == {"MVAU_hls_0", "Thresholding_rtl_0", "total"}
    assert res["MVAU_hls_0"] == json.loads(json.dumps(getCustomOp(model.graph.node[0])
                                                      .node_res_estimation(BOARD.part)))
    text = paths["summary.md"].read_text()
    assert "| MVAU_hls_0 | MVAU_hls | int4 | int4 | uint4 |" in text
    assert "| Thresholding_rtl_0 | Thresholding_rtl | uint4 | — | uint2 |" in text


def test_unspecialized_or_empty_graphs_are_clear_errors(tmp_path):
    with pytest.raises(ReportError, match=r"not specialized .*SpecializeLayers"):
        write_estimate_reports(mvau_chain(CHAIN, specialize=False), tmp_path, BOARD)
    with pytest.raises(MinifinnError, match="clk_ns must be > 0"):
        write_estimate_reports(mvau_chain(CHAIN), tmp_path, BOARD, clk_ns=0)
    assert not (tmp_path / "report").exists()


def test_build_steps_fold_and_report_a_quantized_mlp(tmp_path):
    """The two build steps in the runner, after the standard lowering/conversion steps, on a PTQ'd Brevitas MLP."""
    import torch

    import compiler.steps  # noqa: F401  (registers the standard steps)
    from compiler.config import BuildConfig
    from compiler.export import export_qonnx_model
    from compiler.ptq import quantize_ptq
    from compiler.runner import run_build
    from compiler.zoo import build_model

    torch.manual_seed(0)
    arch = dict(in_features=64, hidden=(32, 16))
    f, q = build_model("mlp", "float", **arch), build_model("mlp", "fp:e3m2", **arch)
    quantize_ptq(f, q, torch.randn(64, 1, 8, 8))
    qonnx = export_qonnx_model(q, torch.randn(1, 1, 8, 8), tmp_path / "mlp.onnx")
    steps = ["step_lower", "step_convert_to_hw", "step_create_dataflow_partition", "step_specialize_layers",
             "passes.resource_folding.folding_step", "compiler.reports.estimate_reports_step"]
    cfg = BuildConfig(output_dir=str(tmp_path / "build"), target_fps=2e6)
    model = run_build(qonnx, cfg, steps=steps, progress=False)
    perf = _load(tmp_path / "build", "estimate_network_performance.json")
    assert perf["estimated_throughput_fps"] >= 2e6
    res = _load(tmp_path / "build", "estimate_layer_resources.json")
    assert [n.op_type for n in model.graph.node] == ["MinifloatMVAU_rtl", "MinifloatThresholding_rtl"] * 2 + [
        "MinifloatMVAU_rtl"] and len(res) == 6
    assert all(res["total"][k] <= 0.8 * BOARD.resources[k] for k in ("LUT", "FF", "BRAM_18K", "URAM", "DSP"))
    assert "fits Pynq-Z2: **yes**" in (tmp_path / "build" / "report" / "summary.md").read_text()
    cfg = BuildConfig(output_dir=str(tmp_path / "build2"), target_fps=1e12)
    with pytest.raises(MinifinnError, match=r"step passes.resource_folding.folding_step: target_fps 1e\+12"):
        run_build(qonnx, cfg, steps=steps, progress=False)
