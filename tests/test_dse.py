"""Design-space exploration: --quick end to end, Pareto flags, caching/resume, the side-by-side table, the
mixed-precision search (known answers on a synthetic cost/accuracy model, and end to end on the digits MLP)."""

import csv
import json
import time

import pytest

from build_flows import dse as dse_flow
from compiler.dse import (
    ALL_FORMATS,
    STUDY_FORMATS,
    aggregate,
    compare,
    layer_alternatives,
    mixed_precision_search,
    paper_table,
    pareto_flags,
    point_key,
    side_by_side,
)
from compiler.errors import ConfigError


def test_format_grid_is_the_papers():
    assert len(ALL_FORMATS) == 6 + 21  # INT3..INT8 and every ExMy with 3 <= bits <= 8, E, M >= 1
    assert "fp:e4m3" in ALL_FORMATS and "fp:e1m1" in ALL_FORMATS and "fp:e6m1" in ALL_FORMATS


def test_pareto_flags_known_answer():
    rows = [dict(model="m", accuracy=0.9, LUT=100), dict(model="m", accuracy=0.8, LUT=200),  # 2nd dominated
            dict(model="m", accuracy=0.95, LUT=300), dict(model="x", accuracy=0.1, LUT=1000)]
    assert pareto_flags(rows, "LUT") == [True, False, True, True]


def test_pareto_fronts_on_the_page_known_answer():
    from build_flows.dse_report import pareto_cells
    rows = [dict(model="m", weights="int:4", accuracy=0.80, LUT=100, LUT_lutonly=100, weight_bits=40),
            dict(model="m", weights="fp:e2m1", accuracy=0.85, LUT=120, LUT_lutonly=90, weight_bits=40),
            dict(model="m", weights="int:8", accuracy=0.84, LUT=300, LUT_lutonly=300, weight_bits=80)]
    for key, flag in (("LUT", "pareto_lut"), ("LUT_lutonly", "pareto_lut_lutonly"), ("weight_bits", "pareto_memory")):
        for r, f in zip(rows, pareto_flags(rows, key)):
            r[flag] = f
    cells = {c[1]: c for c in pareto_cells(rows)}
    # with DSPs INT4 is cheapest and E2M1 more accurate: both on the front; LUT-only E2M1 dominates INT4; INT8 never
    assert cells["LUT with DSPs"][2] == "int:4 80.00 % / 100, fp:e2m1 85.00 % / 120"
    assert cells["LUT with DSPs"][3] == "1 of 2 (int:4)"
    assert cells["LUT-only LUT"][2] == "fp:e2m1 85.00 % / 90" and cells["LUT-only LUT"][3] == "0 of 1"
    assert cells["weight memory [bits]"][3] == "0 of 1"


def test_quick_dse_end_to_end_and_resume(tmp_path):
    from compiler.cli import main as minifinn  # the command a user types: minifinn dse --quick
    out = tmp_path / "dse"
    t0 = time.time()
    assert minifinn(["dse", "--quick", "--output-dir", str(out)]) == 0
    first = time.time() - t0
    with open(out / "dse_points.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and {r["weights"] for r in rows} == {"int:4", "fp:e2m1", "int:8", "fp:e4m3"}
    for r in rows:
        assert 0.5 < float(r["accuracy"]) <= 1.0 and float(r["LUT"]) > 0 and int(r["weight_bits"]) > 0
        # the MLP's hardware graph is its three MVAUs and their requantizers (input quantization on the host): MAC and
        # requantizer LUTs (LUT_mvau) plus the weight ROMs / buffers (memory) are all of it
        assert 0 < float(r["LUT_mvau"]) < float(r["LUT"])
        assert r["hw_images"] == ""  # the MLP has no float islands: its lowered graph is the hardware's arithmetic
        assert abs(float(r["accuracy"]) - float(r["accuracy_qonnx"])) <= 0.01  # hardware-exact vs golden
    bits = {r["weights"]: int(r["weight_bits"]) for r in rows}
    n_weights = 64 * 64 + 64 * 64 + 64 * 10  # the digits MLP 64-64-64-10 of build_flows/check_lowering.py
    assert bits["int:4"] == bits["fp:e2m1"] == 4 * n_weights and bits["int:8"] == bits["fp:e4m3"] == 8 * n_weights
    data = json.loads((out / "dse_points.json").read_text())
    assert any(r["pareto_lut"] for r in data) and any(r["pareto_lut_lutonly"] for r in data)
    for r in data:
        assert r["seeds"] == 1 and r["accuracy_std"] == 0 and r["noise"] > 0  # one seed: binomial noise only
        assert sum(r["by_op"].values()) == pytest.approx(r["LUT"], abs=len(r["by_op"]))
        for key, lut in (("breakdown", r["LUT"]), ("breakdown_lutonly", r["LUT_lutonly"])):
            parts = r[key]
            assert sum(p["LUT"] for p in parts.values()) == pytest.approx(lut, abs=len(r["by_op"]))
            assert parts["mac"]["LUT"] > 0 and parts["requant"]["LUT"] > 0 and parts["memory"]["LUT"] > 0
            assert parts["other"]["LUT"] == 0  # nothing but MACs, requantizers and memories in the MLP
        assert r["breakdown"]["mac"]["LUT"] + r["breakdown"]["requant"]["LUT"] == pytest.approx(r["LUT_mvau"], abs=1)
        assert r["DSP_lutonly"] == 0 and r["LUT_mac_lutonly"] >= r["LUT_mac"]
        assert sum(p["DSP"] for p in r["breakdown"].values()) == r["DSP"]
        assert r["breakdown"]["requant"]["DSP"] > 0  # requantize by conversion: a DSP48 multiplier per lane
    assert any(r["DSP"] > 0 for r in data)
    assert (out / "pareto.png").stat().st_size > 10_000
    page = (out / "index.html").read_text()
    assert "paper side by side" in page and "fp:e4m3" in page and "20-180 %" in page
    md = (out / "README.md").read_text()
    assert "| 4 | int:4 |" in md and "fp:e2m1" in md and "(n=1)" in md
    assert "## Pareto fronts" in md and "| mlp | LUT-only LUT |" in md
    assert len(json.loads((out / "dse_points_seeds.json").read_text())) == 4
    # resume: every point is cached, a rerun only rewrites the outputs
    t0 = time.time()
    assert dse_flow.main(["--quick", "--output-dir", str(out)]) == 0
    assert time.time() - t0 < max(10.0, first)
    assert json.loads((out / "dse_points.json").read_text()) == data
    table = side_by_side(data)["mlp"]
    assert [e["bits"] for e in table] == [4, 8] and all(e["int"] and e["minifloat"] for e in table)


# synthetic model: three layers, formats L(ow) < S(tart) < H(igh); LUTs exactly additive, accuracy additive plus
# an optional interaction term
_LUT = {"L": 50, "S": 100, "H": 200}
_ACC = {"a": {"L": -0.10, "H": 0.05}, "b": {"L": -0.001, "H": 0.0}, "c": {"L": -0.002, "H": 0.01}}


def _fake_evaluate(interaction=0.0, acc_table=_ACC, lut_table=_LUT):
    calls = []

    def evaluate(task):
        fmt = {s: task["overrides"].get(s, task["w"]) for s in acc_table}
        calls.append(fmt)
        acc = 0.80 + sum(acc_table[s].get(f, 0.0) for s, f in fmt.items())
        if fmt.get("a") == "H" and fmt.get("c") == "L":
            acc += interaction
        return {"model": "m", "weights": task["w"], "acts": task["a"], "overrides": dict(task["overrides"]),
                "accuracy": acc, "LUT": sum(lut_table[f] for f in fmt.values())}
    return evaluate, calls


def _search(budget, interaction=0.0):
    evaluate, calls = _fake_evaluate(interaction)
    best, history, report = mixed_precision_search(dict(model="m", w="S", a="S"), "S", ["L", "H"], budget,
                                                   progress=False, evaluate=evaluate, sites=["a", "b", "c"])
    return best, history, report, calls


def test_mixed_search_spends_on_sensitive_layers_and_recovers_from_insensitive_ones():
    best, history, report, calls = _search(budget=300)
    # the sensitive layer a is upgraded, paid for by the two insensitive ones going cheaper: 0.847 at 300 LUT
    assert best["overrides"] == {"a": "H", "b": "L", "c": "L"}
    assert best["accuracy"] == pytest.approx(0.847) and best["LUT"] == 300
    assert len(calls) == len(history) == 1 + 3 * 2 + 1  # start, single-layer probes, one combination
    assert report["probes"] == 6 and report["trials"] == 1 and report["steps"][0]["kept"]
    sens = report["sensitivity"]
    assert sens["a"]["max_drop"] == pytest.approx(0.10) and sens["b"]["max_drop"] == pytest.approx(0.001)
    assert sens["a"]["probes"]["H"]["lut_delta"] == 100 and sens["c"]["max_gain"] == pytest.approx(0.01)


def test_mixed_search_keeps_only_measured_improvements_within_budget():
    # the upgrade plan is predicted +4.7 % but measured worse (interaction): rejected, the start stays the answer
    best, history, report, _ = _search(budget=300, interaction=-0.06)
    assert best["overrides"] == {} and best["accuracy"] == pytest.approx(0.80)
    assert [s["kept"] for s in report["steps"]] == [False]
    # a start above the budget is first brought down on the least sensitive layer (b), then nothing else pays off
    best, history, report, _ = _search(budget=260)
    assert best["overrides"] == {"b": "L"} and best["LUT"] == 250 and best["accuracy"] == pytest.approx(0.799)
    assert history[0]["LUT"] == 300 and report["steps"][0]["kept"] and report["steps"][0]["moves"] == {"b": "L"}


def test_mixed_search_recovery_takes_the_savings_that_reach_the_budget():
    # T saves 5 LUT and gains a little, L saves 50 and loses a little: only L on both layers reaches the budget
    evaluate, _ = _fake_evaluate(acc_table={"a": {"T": 0.001, "L": -0.01}, "b": {"T": 0.001, "L": -0.01}},
                                 lut_table={"S": 100, "T": 95, "L": 50})
    best, _, report = mixed_precision_search(dict(model="m", w="S", a="S"), "S", ["L", "T"], 100, progress=False,
                                             evaluate=evaluate, sites=["a", "b"])
    assert best["overrides"] == {"a": "L", "b": "L"} and best["LUT"] == 100
    assert best["accuracy"] == pytest.approx(0.78) and report["steps"][0]["kept"]


def test_point_key_of_many_overrides_is_a_short_distinct_hash():
    many = {f"blocks.{i}.attn.{p}": "fp:e2m4" for i in range(2) for p in ("q", "k", "v", "proj")}
    key = point_key("vit", "fp:e2m3", "fp:e2m3", "calibrate", many)
    assert len(key) < 100 and key.startswith("vit__w-fpe2m3__a-fpe2m3__calibrate__8layers-")
    assert key != point_key("vit", "fp:e2m3", "fp:e2m3", "calibrate", dict(many, **{"blocks.0.attn.q": "int:6"}))
    short = point_key("mlp", "int:4", "int:4", "calibrate", {"fc1": "int:8"})
    assert short == "mlp__w-int4__a-int4__calibrate__fc1-int8"  # unchanged for the existing caches
    assert point_key("mlp", "int:4", "int:4", "calibrate", None, 1000, 500).endswith("__img1000-1500")


def test_layer_alternatives_are_the_best_int_and_minifloat_at_neighbouring_widths():
    rows = [dict(weights=w, w_bits=b, w_kind=w.split(":")[0], accuracy=acc, LUT=lut) for w, b, acc, lut in (
        ("int:4", 4, 0.60, 30), ("fp:e2m1", 4, 0.70, 25), ("fp:e1m2", 4, 0.65, 32), ("int:5", 5, 0.75, 50),
        ("fp:e2m2", 5, 0.80, 45), ("int:6", 6, 0.81, 80), ("fp:e2m3", 6, 0.82, 75), ("fp:e3m2", 6, 0.79, 70),
        ("int:8", 8, 0.83, 200))]
    assert layer_alternatives(rows, "fp:e2m2") == ["fp:e2m1", "int:4", "int:5", "fp:e2m3", "int:6"]
    assert layer_alternatives(rows, "int:6") == ["fp:e2m2", "int:5", "fp:e2m3", "int:8"]
    with pytest.raises(ConfigError, match="fp:e4m3"):
        layer_alternatives(rows, "fp:e4m3")


@pytest.mark.slow  # many probe points; the quick DSE end to end stays in the default suite
def test_mixed_precision_search_respects_the_budget(tmp_path, capsys):
    out = tmp_path / "dse"
    # two processes: the single-layer probes run ahead in parallel (prefetch), the search then reads them in order
    assert dse_flow.main(["--quick", "--mixed", "--jobs", "2", "--output-dir", str(out)]) == 0
    result = json.loads((out / "mixed_precision.json").read_text())["mlp"]
    uniform = json.loads((out / "dse_points.json").read_text())
    assert result["mixed"]["LUT"] <= result["budget_lut"]
    assert result["best_uniform"]["LUT"] <= result["budget_lut"]
    search = result["search"]
    # starts at the best uniform format within the budget; probes fc1, fc2, head at every alternative
    assert search["start"] == result["best_uniform"]["weights"] and search["sites"] == ["fc1", "fc2", "head"]
    assert search["start_accuracy"] == result["best_uniform"]["accuracy"]
    assert set(search["alternatives"]) <= {r["weights"] for r in uniform} and search["alternatives"]
    assert result["evaluated"] == 1 + search["probes"] + search["trials"]
    for layer in search["sites"]:
        assert set(search["sensitivity"][layer]["probes"]) == set(search["alternatives"])
    # the search never ends below its start, which is the best uniform point itself
    assert result["mixed"]["accuracy"] >= result["best_uniform"]["accuracy"]
    assert result["mixed_beats_uniform"] == (result["mixed"]["accuracy"] > result["best_uniform"]["accuracy"])
    # the held-out check needs test images after the search's: digits has none left, a clear error, exit code 2
    assert dse_flow.main(["--quick", "--mixed", "--confirm-images", "100", "--output-dir", str(out)]) == 2
    assert "image_offset 359 is past the 359 test images" in capsys.readouterr().err


def test_a_point_cached_under_other_estimate_models_is_run_again(tmp_path, monkeypatch):
    """The cache holds accuracy and cost together: after a recalibration (other cost-model fingerprint) a cached
    point must be evaluated again, while one made with the current models is reused."""
    from compiler.cost_model import cost_model_fingerprint
    from compiler.dse import points as dse

    calls = []

    def fake_evaluate(task, cache):
        calls.append(task["w"])
        return {"model": task["model"], "weights": task["w"], "acts": task["a"], "accuracy": 0.5, "LUT": 100}

    monkeypatch.setattr(dse, "_evaluate", fake_evaluate)
    task = {"model": "mlp", "w": "int:4", "a": "int:4", "ptq": "calibrate", "images": 10, "out_dir": str(tmp_path),
            "data": "digits", "epochs": 15}
    first = dse.evaluate_point(task)
    assert calls == ["int:4"] and first["cost_model"] == cost_model_fingerprint()
    assert first["study"] == dse.study_key(task) == f"v{dse.STUDY_VERSION}-{dse.float_key(task)}"
    assert dse.evaluate_point(task) == first and calls == ["int:4"]  # reused
    cache = next((tmp_path / "points").glob("*.json"))
    cache.write_text(json.dumps(dict(first, cost_model="an-older-model", LUT=1)))
    again = dse.evaluate_point(task)
    assert calls == ["int:4", "int:4"] and again["LUT"] == 100 and again["cost_model"] == cost_model_fingerprint()
    # another float model (here: more training epochs) or an older study version: measured again too
    assert dse.float_key(dict(task, epochs=16)) != dse.float_key(task)
    cache.write_text(json.dumps(dict(again, study="v1-" + dse.float_key(task), LUT=1)))
    assert dse.evaluate_point(task)["LUT"] == 100 and len(calls) == 3


def test_a_graph_with_float_compute_left_after_lowering_is_refused():
    """A point whose lowered graph keeps a float Gemm (as activation equalization's graphs did) must not be costed
    or reported as hardware-exact; the study's best-PTQ sets leave activation equalization out."""
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    from compiler.dse import check_fully_lowered, dse_technique_sets
    from compiler.errors import MinifinnError

    node = helper.make_node("Gemm", ["x", "w"], ["y"], name="head_gemm")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    model = ModelWrapper(qonnx_make_model(graph))
    with pytest.raises(MinifinnError, match=r"cnn W int:4.*1 compute node\(s\) stayed float.*head_gemm \(Gemm\)"):
        check_fully_lowered(model, "cnn W int:4")
    sets = dse_technique_sets()
    assert "calibrate" in sets and all("act_equalization" not in v for v in sets.values())


def test_a_vit_point_is_checked_on_the_hardware_graph(tmp_path):
    """The lowered ViT keeps softmax / LayerNorm / GELU as float islands; its point also runs the hardware graph
    (the hardware ops' fixed-point arithmetic) and records how often both predict the same class. Its cost covers
    those ops too."""
    from compiler.dse import evaluate_point

    task = dict(model="vit", w="fp:e3m2", a="fp:e3m2", ptq="calibrate", data="digits", images=120, hw_images=40,
                target_cycles=4096, out_dir=str(tmp_path), epochs=15)
    row = evaluate_point(task)
    assert not row.get("error"), row.get("error")
    assert row["float_islands"] and row["hw_images"] == 40
    assert 0.8 <= row["hw_lowered_agreement"] <= 1.0 and row["accuracy_hw"] > 0.5
    assert {"MinifloatSoftmax", "MinifloatLayerNorm", "MinifloatMVAU"} <= set(row["by_op"])
    assert row["LUT_mvau"] < row["LUT"] and row["by_op"]["MinifloatLayerNorm"] > 0
    assert len(list((tmp_path / "models").glob("*_hw.onnx"))) == 1  # the hardware graph it ran is kept


def test_float_models_train_identically_whatever_the_random_state(tmp_path):
    # a new process starts torch at a random seed; two trainings of one float key must still be one model (two
    # workers that trained it at once used to measure their points on two different models)
    import torch

    from compiler.dse import floats as dse

    models = []
    for i, seed in enumerate((1, 12345)):
        task = dict(dse_flow.tasks_for(dse_flow.parse_args(["--quick", "--output-dir", str(tmp_path / str(i))]))[0])
        torch.manual_seed(seed)
        models.append(dse._float_model(task, dse._data(task["data"])).state_dict())
    assert models[0].keys() == models[1].keys()
    for name in models[0]:
        assert torch.equal(models[0][name], models[1][name]), name


def _row(w, acc, seed, images=10000, lut=100.0, mac=50.0):
    kind, bits = ("int", int(w[4:])) if w.startswith("int") else ("fp", 1 + sum(int(c) for c in w[4:].split("m")))
    return {"model": "m", "weights": w, "acts": w, "seed": seed, "accuracy": acc, "images": images, "LUT": lut,
            "DSP": 0, "BRAM_18K": 0, "LUT_mac_lutonly": mac, "w_kind": kind, "w_bits": bits, "a_bits": bits}


def test_seed_statistics_and_the_noise_rule_known_answers():
    rows = [_row("int:4", a, s) for s, a in enumerate((0.80, 0.82, 0.84))]
    rows += [_row("fp:e2m1", a, s, mac=80.0) for s, a in enumerate((0.83, 0.84, 0.85))]
    rows += [_row("fp:e1m2", a, s, mac=60.0) for s, a in enumerate((0.90, 0.91, 0.92))]
    agg = {r["weights"]: r for r in aggregate(rows)}
    assert agg["int:4"]["accuracy"] == pytest.approx(0.82) and agg["int:4"]["accuracy_std"] == pytest.approx(0.02)
    assert agg["int:4"]["seeds"] == 3 and agg["int:4"]["per_seed"] == [0.80, 0.82, 0.84]
    # +2 points with a noise of sqrt(0.02^2 + 0.01^2) = 2.2 points: a tie; +9 points: better
    assert compare(agg["fp:e2m1"], agg["int:4"]) == "tie"
    assert compare(agg["fp:e1m2"], agg["int:4"]) == "better" and compare(agg["int:4"], agg["fp:e1m2"]) == "worse"
    # one seed: the binomial standard error of the test images is the noise floor
    one = aggregate([_row("int:4", 0.9, 0, images=100)])[0]
    assert one["accuracy_std"] == 0 and one["noise"] == pytest.approx((0.9 * 0.1 / 100) ** 0.5)
    table = paper_table(list(agg.values()), compare)["m"]
    assert [e["bits"] for e in table] == [4]
    e = table[0]
    assert e["minifloat"]["weights"] == "fp:e1m2" and e["verdict"] == "better"
    assert e["mac_ratio"] == pytest.approx(60 / 50) and e["mac_ratio_range"] == pytest.approx((1.2, 1.6))
    from build_flows.dse_report import side_cells
    cells = side_cells(e)
    assert cells[:6] == ["4", "int:4", "82.00 ± 2.00 % (n=3)", "fp:e1m2", "91.00 ± 1.00 % (n=3)", "better"]
    assert cells[8] == "1.20 (1.20-1.60)" and cells[10] == "within"
    assert side_cells(dict(e, mac_ratio=0.5))[10].startswith("below")


def test_study_tasks_have_seeds_formats_and_distinct_caches(tmp_path):
    args = dse_flow.parse_args(["--model", "cnn", "--seeds", "3", "--output-dir", str(tmp_path)])
    tasks = dse_flow.tasks_for(args)
    assert len(tasks) == 3 * len(STUDY_FORMATS) and [t["seed"] for t in tasks[:2]] == [0, 0]
    assert tasks[-1]["seed"] == 2 and args.ptq == "calibrate"
    assert set(STUDY_FORMATS) <= set(ALL_FORMATS) and sum(f.startswith("int") for f in STUDY_FORMATS) == 6
    keys = {point_key(t["model"], t["w"], t["a"], t["ptq"], seed=t["seed"]) for t in tasks}
    assert len(keys) == len(tasks)
    from compiler.dse import float_key
    assert len({float_key(t) for t in tasks}) == 3
    assert dse_flow.main(["--quick", "--seeds", "0", "--output-dir", str(tmp_path)]) == 2


def test_first_last_layers_in_their_own_format(tmp_path):
    """--first-last: the paper's setting (first and last layer at 8 bits, E3M4 at minifloat points), own cache keys,
    and the built model really carries the first/last format (its weight memory)."""
    args = dse_flow.parse_args(["--model", "cnn", "--seeds", "1", "--first-last", "paper", "--output-dir",
                                str(tmp_path)])
    tasks = dse_flow.tasks_for(args)
    assert {t["w"]: t["first_last"] for t in tasks}["int:4"] == "int:8"
    assert {t["w"]: t["first_last"] for t in tasks}["fp:e2m1"] == "fp:e3m4"
    t = tasks[0]
    assert point_key(t["model"], t["w"], t["a"], t["ptq"], first_last=t["first_last"]) != point_key(
        t["model"], t["w"], t["a"], t["ptq"])
    assert dse_flow.main(["--quick", "--first-last", "int:9x", "--output-dir", str(tmp_path / "bad")]) == 2
    out = tmp_path / "fl"
    assert dse_flow.main(["--quick", "--first-last", "int:8", "--output-dir", str(out)]) == 0
    rows = {r["weights"]: r for r in json.loads((out / "dse_points.json").read_text())}
    # the digits MLP 64-64-64-10: first (64x64) and last (64x10) layer at 8 bits, the middle one at the point's
    assert rows["int:4"]["weight_bits"] == 8 * 64 * 64 + 4 * 64 * 64 + 8 * 64 * 10
    assert rows["fp:e4m3"]["weight_bits"] == 8 * (64 * 64 * 2 + 64 * 10)
    assert all(r["first_last"] == "int:8" for r in rows.values())


def test_mvau_breakdown_adds_up_and_moves_products_to_dsps():
    """The MVAU's MAC / requant / memory split (its ``resource_breakdown``) adds up to its LUT estimate; its DSP
    datapath takes LUTs out of the MAC only, and a standalone requantizer is all "requant"."""
    import tempfile

    import torch
    from qonnx.custom_op.registry import getCustomOp

    from compiler.dse import hardware_graph, lut_only
    from compiler.dse.floats import _data
    from compiler.export import export_qonnx_model
    from compiler.ptq import quantize_ptq
    from compiler.zoo import QuantSpec, build_model
    from compiler.zoo.configs import MODEL_CONFIGS
    from passes import lower_qonnx

    config, data = MODEL_CONFIGS["digits"]["mlp"], _data("digits")
    torch.manual_seed(0)
    quant = build_model("mlp", QuantSpec(weights="fp:e3m2", acts="fp:e3m2"), **config)
    quantize_ptq(build_model("mlp", "float", **config), quant, data[0][:64], techniques=("calibrate",))
    with tempfile.TemporaryDirectory() as d:
        lowered = lower_qonnx(export_qonnx_model(quant, torch.from_numpy(data[2][:1]), f"{d}/m.onnx"))
    _, specialized = hardware_graph(lowered)
    seen = moved = 0
    for model in (specialized, lut_only(specialized)):
        for node in model.graph.node:
            inst = getCustomOp(node) if node.domain.startswith("finn.custom_op.fpgadataflow") else None
            if inst is not None and inst.BREAKDOWN_KIND == "requant":
                parts = inst.resource_breakdown()
                assert parts["requant"]["LUT"] == inst.lut_estimation() > 0 and parts["mac"]["LUT"] == 0
            if inst is None or "mac_dsp" not in inst.get_nodeattr_types():
                continue
            parts = inst.resource_breakdown()
            assert sum(p["LUT"] for p in parts.values()) == inst.lut_estimation()
            assert parts["mac"]["LUT"] > 0 and parts["memory"]["LUT"] > 0
            if inst.get_nodeattr("mac_dsp") == "lut":
                assert parts["mac"]["DSP"] == 0
            else:  # a folding where the DSP datapath maps products (the op's own folding space says which)
                fold = next((f for f in inst.folding_space() if f.get("use_dsp")
                             and (inst.set_nodeattr("PE", f["PE"]) or inst.dsp_plan().dsps_per_lane)), None)
                if fold is None:
                    continue
                inst.set_nodeattr("SIMD", fold["SIMD"])
                inst.set_nodeattr("use_dsp", 0)
                lut_parts = inst.resource_breakdown()
                inst.set_nodeattr("use_dsp", 1)
                dsp_parts = inst.resource_breakdown()
                assert dsp_parts["mac"]["DSP"] > 0 and dsp_parts["mac"]["LUT"] < lut_parts["mac"]["LUT"]
                assert dsp_parts["requant"] == lut_parts["requant"] and dsp_parts["memory"] == lut_parts["memory"]
                moved += 1
            seen += 1
    assert seen >= 4 and moved >= 1


def test_the_study_cnn_has_a_second_stage_with_its_own_quantizer_sites():
    """The Fashion-MNIST recipe's CNN: stem, residual block, pool, second residual block at half resolution, pool,
    global pooling; the second block's layers are quantizer sites of their own (per-layer formats reach them)."""
    import torch

    from compiler.errors import ConfigError
    from compiler.zoo import QuantSpec, build_model
    from compiler.zoo.configs import MODEL_CONFIGS

    config = MODEL_CONFIGS["fashion"]["cnn"]
    assert config["stages"] == 2
    model = build_model("cnn", QuantSpec(weights="int:4", acts="int:4"), **config)
    assert {"block.conv1", "block2.conv1", "block2.conv2"} <= set(model.quant_sites)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ConfigError, match="too small for 3 2x2 poolings"):
        build_model("cnn", "float", width=4, image_size=4, stages=3)
