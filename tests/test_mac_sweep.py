"""MAC cost sweep end to end on a tiny subset: CSV columns, accumulator widths, plot, ratios."""

import csv
import shutil

import pytest

from build_flows import mac_sweep
from compiler.numerics import accumulator_bits, parse_format

pytestmark = pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not installed (apt-get install yosys)")


def test_sweep_writes_csv_png_and_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINIFINN_SYNTH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    rc = mac_sweep.main(["--formats", "int4", "e2m1", "--units", "mac", "--k", "64", "--output-dir", str(out)])
    assert rc == 0
    rows = list(csv.DictReader(open(out / "mac_costs.csv")))
    assert list(rows[0].keys()) == mac_sweep.CSV_COLUMNS
    by_fmt = {(r["weight_fmt"], r["act_fmt"]): r for r in rows}
    assert set(by_fmt) == {("INT4", "INT4"), ("E2M1", "E2M1")}
    for (w, _), r in by_fmt.items():
        fmt = parse_format(w.lower())
        assert int(r["acc_bits"]) == accumulator_bits(fmt, fmt, 64)
        assert int(r["FF"]) == int(r["acc_bits"]) and int(r["LUT"]) > 0
    ratio = float(by_fmt[("E2M1", "E2M1")]["lut_ratio_vs_int"])
    assert ratio == pytest.approx(int(by_fmt[("E2M1", "E2M1")]["LUT"]) / int(by_fmt[("INT4", "INT4")]["LUT"]), 1e-3)
    assert (out / "mac_costs.png").stat().st_size > 10_000
    assert "4 bits:" in (out / "summary.txt").read_text() and "4 bits:" in capsys.readouterr().out


def test_configurations_cover_the_design_space():
    configs = mac_sweep.configurations()
    fmts = {c["weight_fmt"] for c in configs if c["weight_fmt"] == c["act_fmt"]}
    assert {f"INT{b}" for b in range(3, 9)} <= fmts
    assert len([f for f in fmts if f.startswith("E")]) == sum(b - 2 for b in range(3, 9))  # 21 ExMy, E,M >= 1
    assert {c["unit"] for c in configs} == {"mac", "dotp8", "dotp16"}
    with pytest.raises(Exception, match="unknown unit"):
        mac_sweep.configurations(units=["dotp3"])
