"""The standard build (compiler/steps.py): reports, verification ladder, resource-aware folding, clear errors."""

import json

import numpy as np
import pytest
import torch
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

import compiler.steps  # noqa: F401  (registers the steps)
from compiler.batched_exec import BatchedGraph
from compiler.boards import get_board
from compiler.build_cmd import main as build_main
from compiler.config import BuildConfig
from compiler.errors import MinifinnError, UnmappableNodesError
from compiler.export import export_qonnx_model
from compiler.hw_accuracy import built_hardware_graph, hardware_logits
from compiler.numerics import MinifloatFormat
from compiler.ptq import quantize_ptq
from compiler.runner import DEFAULT_STEPS, run_build
from compiler.steps import _hardware_rung
from compiler.zoo import build_model
from passes.resource_folding import (
    FoldingBudgetError,
    FoldingTargetUnreachableError,
    SetFoldingResourceAware,
)

RESOURCES = ("LUT", "FF", "BRAM_18K", "URAM", "DSP")


def total_resources(model):
    total = dict.fromkeys(RESOURCES, 0)
    for node in model.graph.node:
        est = getCustomOp(node).node_res_estimation(None)
        for key in RESOURCES:
            total[key] += est.get(key, 0)
    return total

TINY_MLP = dict(in_features=64, hidden=(32, 16))


def _qonnx(tmp_path, name="mlp", spec="fp:e3m2", **cfg):
    torch.manual_seed(0)
    cfg = cfg or TINY_MLP
    f, q = build_model(name, "float", **cfg), build_model(name, spec, **cfg)
    quantize_ptq(f, q, torch.randn(64, 1, 8, 8))
    return export_qonnx_model(q, torch.randn(1, 1, 8, 8), tmp_path / f"{name}.onnx")


def _cfg(tmp_path, **kw):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(2, 1, 8, 8)).astype(np.float32))
    return BuildConfig(output_dir=str(tmp_path / "build"), verify_input_npy=str(tmp_path / "x.npy"), **kw)


def test_mlp_build_reports_and_verification(tmp_path):
    cfg = _cfg(tmp_path)
    run_build(_qonnx(tmp_path), cfg, progress=False)
    report = tmp_path / "build" / "report"
    res = json.loads((report / "estimate_layer_resources.json").read_text())
    cycles = json.loads((report / "estimate_layer_cycles.json").read_text())
    perf = json.loads((report / "estimate_network_performance.json").read_text())
    ops = json.loads((report / "op_and_param_counts.json").read_text())
    layers = [k for k in res if k != "total"]
    # three matrix products; the two hidden layers' per-channel requantizers stand alone (their style is folded)
    assert sorted(layers) == ["MinifloatMVAU_rtl_0", "MinifloatMVAU_rtl_1", "MinifloatMVAU_rtl_2",
                              "MinifloatThresholding_rtl_0", "MinifloatThresholding_rtl_1"]
    assert set(cycles) == set(layers)
    assert res["total"]["LUT"] == pytest.approx(sum(res[k]["LUT"] for k in layers))
    assert {"critical_path_cycles", "max_cycles", "max_cycles_node_name", "estimated_throughput_fps",
            "estimated_latency_ns"} <= set(perf)
    assert perf["estimated_throughput_fps"] == pytest.approx(1e8 / max(cycles.values()))
    assert ops["total"]["op_mac_e3m2_e3m2"] == 64 * 32 + 32 * 16 + 16 * 10
    ver = json.loads((report / "verification.json").read_text())
    # the stitched simulation subsumes the chained one
    assert ver["passed"] and ver["stitched_rtlsim"]["passed"] == 2 and "whole_partition" not in ver
    assert all(v["mode"] == "rtlsim" and v["passed"] == 2 for v in ver["nodes"].values())
    assert ver["qonnx_vs_lowered"]["argmax_agreement"] == 1.0
    hw = ver["lowered_vs_hardware"]  # the built hardware graph against the lowered one, end to end
    assert hw["codes"] == 2 * 10 and hw["argmax_agreement"] == 1.0 and hw["differing_codes"] <= 1
    # the rung reads the hardware graph's own outputs: lowered outputs moved by one class disagree everywhere
    built = ModelWrapper(str(tmp_path / "build" / "intermediate_models" / "step_verify.onnx"))
    x = np.load(tmp_path / "x.npy")
    low = BatchedGraph(ModelWrapper(str(tmp_path / "build" / "intermediate_models" / "dataflow_parent.onnx")),
                       partition=built).run(x)
    low = np.roll(next(iter(low.values())).reshape(2, -1), 1, axis=1)
    moved = _hardware_rung(cfg, low, built, x)
    assert moved["differing_codes"] > 0 and moved["max_abs_output_diff"] > 0
    # the hardware-exact accuracy's graph: the parent holding the build's last partition model
    graph = built_hardware_graph(tmp_path / "build")
    part = ModelWrapper(str(graph)).get_nodes_by_op_type("StreamingDataflowPartition")[0]
    assert getCustomOp(part).get_nodeattr("model").endswith(f"{DEFAULT_STEPS[-1]}.onnx")
    assert np.array_equal(hardware_logits(graph, x, progress=False).argmax(1), np.roll(low, -1, axis=1).argmax(1))
    summary = (report / "summary.md").read_text()
    assert "MinifloatMVAU_rtl" in summary and "fits Pynq-Z2: **yes**" in summary
    times = json.loads((tmp_path / "build" / "time_per_step.json").read_text())
    assert list(times) == DEFAULT_STEPS


@pytest.mark.parametrize("target_fps", [2e5, 2e6, 8e6])
def test_folding_meets_target_fps_within_budget(tmp_path, target_fps):
    cfg = _cfg(tmp_path, target_fps=target_fps)
    cfg.stop_step = "step_estimate_reports"
    model = run_build(_qonnx(tmp_path), cfg, progress=False)
    perf = json.loads((tmp_path / "build" / "report" / "estimate_network_performance.json").read_text())
    assert perf["estimated_throughput_fps"] >= target_fps
    board = get_board("Pynq-Z2")
    total = total_resources(model)
    assert all(total[k] <= 0.8 * board.resources[k] for k in total)


def _specialized(tmp_path):
    cfg = _cfg(tmp_path)
    cfg.stop_step = "step_specialize_layers"
    return run_build(_qonnx(tmp_path), cfg, progress=False)


def test_resource_aware_folding_never_exceeds_the_budget(tmp_path):
    model = _specialized(tmp_path)
    for node in model.graph.node:  # the fully folded option of every node, a requantizer in its cheapest style
        inst = getCustomOp(node)
        options = [f for f in inst.folding_space() if f.get("PE", 1) == 1 and f.get("SIMD", 1) == 1]
        luts = []
        for option in options:
            for attr, value in option.items():
                inst.set_nodeattr(attr, value)
            luts.append(inst.lut_estimation())
        for attr, value in options[luts.index(min(luts))].items():
            inst.set_nodeattr(attr, value)
    folded_luts = total_resources(model)["LUT"]
    board = dict(get_board("Pynq-Z2").resources)
    for factor in (1.3, 2.0, 4.0):  # budgets that allow a little, some, more parallelism
        budget = dict(board, LUT=int(folded_luts * factor / 0.8))
        model = model.transform(SetFoldingResourceAware(budget))
        assert total_resources(model)["LUT"] <= 0.8 * budget["LUT"]
        pes = [getCustomOp(n).get_nodeattr("PE") * getCustomOp(n).get_nodeattr("SIMD") for n in model.graph.node
               if n.op_type.startswith("MinifloatMVAU")]
        assert max(pes) > 1  # it did unfold something
    with pytest.raises(FoldingBudgetError, match=r"fully folded.*LUT \d+ needed vs [\d.]+ available"):
        model.transform(SetFoldingResourceAware(dict(board, LUT=int(folded_luts * 0.5))))


def test_impossible_fps_is_a_clear_error(tmp_path):
    cfg = _cfg(tmp_path, target_fps=1e12)
    with pytest.raises(FoldingTargetUnreachableError, match="even fully unfolded"):
        run_build(_qonnx(tmp_path), cfg, progress=False)


def test_fps_that_does_not_fit_the_board_says_by_how_much(tmp_path):
    model = _specialized(tmp_path)
    budget = dict(get_board("Pynq-Z2").resources, LUT=3000)
    with pytest.raises(FoldingBudgetError, match=r"LUT \d+ needed vs 2400 available"):
        model.transform(SetFoldingResourceAware(budget, target_fps=5e6))


def test_unmappable_nodes_are_listed_with_reasons(tmp_path):
    # 2x2 average pooling straight into global average pooling: no quantizer in between, so the lowering keeps a
    # float island (Dequantize -> GlobalAveragePool -> QuantizeToFormat) that no hardware op implements
    qonnx = _qonnx(tmp_path, "cnn", width=8, image_size=8, pool="avg")
    cfg = _cfg(tmp_path)
    with pytest.raises(UnmappableNodesError, match=r"(?s)cannot be mapped.*Dequantize.*GlobalAveragePool"
                                                   r".*no minifinn or FINN hardware op.*QuantizeToFormat"
                                                   r".*Only input quantization"):
        run_build(qonnx, cfg, progress=False)


def test_specialize_and_folding_config_files_are_applied(tmp_path):
    (tmp_path / "spec.json").write_text(json.dumps({"MinifloatMVAU_1": {"preferred_impl_style": "hls"}}))
    (tmp_path / "fold.json").write_text(json.dumps({"MinifloatMVAU_rtl_0": {"PE": 2, "SIMD": 4}}))
    cfg = _cfg(tmp_path, specialize_layers_config_file=str(tmp_path / "spec.json"),
               folding_config_file=str(tmp_path / "fold.json"), stop_step="step_estimate_reports")
    model = run_build(_qonnx(tmp_path), cfg, progress=False)
    ops = {n.name: n for n in model.graph.node}
    assert ops["MinifloatMVAU_hls_0"].op_type == "MinifloatMVAU_hls"
    inst = getCustomOp(ops["MinifloatMVAU_rtl_0"])
    assert (inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD")) == (2, 4)
    (tmp_path / "bad.json").write_text(json.dumps({"NoSuchNode": {"PE": 2}}))
    cfg = _cfg(tmp_path, folding_config_file=str(tmp_path / "bad.json"))
    cfg.output_dir = str(tmp_path / "build_bad")  # another config: not into the folder of the build above
    with pytest.raises(MinifinnError, match="folding_config_file: .*bad.json names nodes that are not in the "
                                            "model: NoSuchNode"):
        run_build(_qonnx(tmp_path), cfg, progress=False)


def test_cli_bad_board_and_bad_model_are_one_line_errors(tmp_path, capsys):
    qonnx = _qonnx(tmp_path)
    path = tmp_path / "mlp.onnx"
    assert build_main([str(path), "--board", "NoSuchBoard", "--output-dir", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "unknown board 'NoSuchBoard'" in err and "Pynq-Z2" in err and "Traceback" not in err
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    assert build_main([str(bad), "--output-dir", str(tmp_path / "b2")]) == 2
    assert "not a readable ONNX model" in capsys.readouterr().err
    assert path.is_file() and qonnx.graph.node


def test_step_verify_fails_naming_the_node(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path)
    cfg.stop_step = "step_hw_codegen"
    model = run_build(_qonnx(tmp_path), cfg, progress=False)
    # corrupt one weight of the generated RTL's memory file: rtlsim must now disagree with the Python model
    node = [n for n in model.graph.node if n.op_type.startswith("MinifloatMVAU")][1]
    code_dir = getCustomOp(node).get_nodeattr("code_gen_dir_ipgen")
    from pathlib import Path

    weights = Path(code_dir) / "weights.hex"  # the $readmemh file of the generated RTL
    lines = weights.read_text().split()
    lines = [format(int(w, 16) ^ 0x7F, "x").zfill(len(w)) for w in lines]  # flip low bits of every word
    weights.write_text("\n".join(lines) + "\n")
    with pytest.raises(MinifinnError, match=rf"verification failed: {node.name} \(rtlsim\)"):
        compiler.steps.step_verify(model, cfg)
    ver = json.loads((tmp_path / "build" / "report" / "verification.json").read_text())
    assert not ver["passed"] and ver["nodes"][node.name]["failed"] >= 1


def test_folding_also_folds_thresholding_layers():
    from test_thresholding import threshold_model

    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    model, _, _ = threshold_model(MinifloatFormat(3, 2), 16, 1, 12, (64,))
    model = model.transform(SpecializeLayers("xc7z020clg400-1"))
    target_fps = 1e9 / (10 * 128)  # 128 cycles per frame: 64 vectors x 16 channels needs PE >= 8
    model = model.transform(SetFoldingResourceAware(get_board("Pynq-Z2").resources, 10.0, target_fps))
    inst = getCustomOp(model.graph.node[0])
    assert inst.get_nodeattr("PE") == 8 and inst.get_exp_cycles() == 128
