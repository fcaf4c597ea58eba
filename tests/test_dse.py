"""Design-space exploration: --quick end to end, Pareto flags, caching/resume, the side-by-side table."""

import csv
import json
import time

from build_flows import dse as dse_flow
from compiler.dse import ALL_FORMATS, pareto_flags, side_by_side


def test_format_grid_is_the_papers():
    assert len(ALL_FORMATS) == 6 + 21  # INT3..INT8 and every ExMy with 3 <= bits <= 8, E, M >= 1
    assert "fp:e4m3" in ALL_FORMATS and "fp:e1m1" in ALL_FORMATS and "fp:e6m1" in ALL_FORMATS


def test_pareto_flags_known_answer():
    rows = [dict(model="m", accuracy=0.9, LUT=100), dict(model="m", accuracy=0.8, LUT=200),  # 2nd dominated
            dict(model="m", accuracy=0.95, LUT=300), dict(model="x", accuracy=0.1, LUT=1000)]
    assert pareto_flags(rows, "LUT") == [True, False, True, True]


def test_quick_dse_end_to_end_and_resume(tmp_path):
    out = tmp_path / "dse"
    t0 = time.time()
    assert dse_flow.main(["--quick", "--output-dir", str(out)]) == 0
    first = time.time() - t0
    with open(out / "dse_points.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and {r["weights"] for r in rows} == {"int:4", "fp:e2m1", "int:8", "fp:e4m3"}
    for r in rows:
        assert 0.5 < float(r["accuracy"]) <= 1.0 and float(r["LUT"]) > 0 and int(r["weight_bits"]) > 0
        assert abs(float(r["accuracy"]) - float(r["accuracy_qonnx"])) <= 0.01  # hardware-exact vs golden
    bits = {r["weights"]: int(r["weight_bits"]) for r in rows}
    n_weights = 64 * 64 + 64 * 64 + 64 * 10  # the digits MLP 64-64-64-10 of build_flows/check_lowering.py
    assert bits["int:4"] == bits["fp:e2m1"] == 4 * n_weights and bits["int:8"] == bits["fp:e4m3"] == 8 * n_weights
    data = json.loads((out / "dse_points.json").read_text())
    assert any(r["pareto_lut"] for r in data)
    assert (out / "pareto.png").stat().st_size > 10_000
    page = (out / "index.html").read_text()
    assert "minifloat vs integer at equal width" in page and "fp:e4m3" in page
    # resume: every point is cached, a rerun only rewrites the outputs
    t0 = time.time()
    assert dse_flow.main(["--quick", "--output-dir", str(out)]) == 0
    assert time.time() - t0 < max(10.0, first)
    assert json.loads((out / "dse_points.json").read_text()) == data
    table = side_by_side(data)["mlp"]
    assert [e["bits"] for e in table] == [4, 8] and all(e["int"] and e["minifloat"] for e in table)


def test_mixed_precision_search_respects_the_budget(tmp_path):
    out = tmp_path / "dse"
    assert dse_flow.main(["--quick", "--mixed", "--output-dir", str(out)]) == 0
    result = json.loads((out / "mixed_precision.json").read_text())["mlp"]
    assert result["mixed"]["LUT"] <= result["budget_lut"]
    assert result["best_uniform"]["LUT"] <= result["budget_lut"]
    assert result["evaluated"] >= 1 + 3  # the start point and one trial per layer (fc1, fc2, head)
    # greedy never ends below its start (the cheapest uniform weights at the same activation format)
    assert result["mixed"]["accuracy"] >= min(r["accuracy"] for r in json.loads(
        (out / "dse_points.json").read_text()))
