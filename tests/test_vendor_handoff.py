"""Driver packing (no PYNQ needed) and the vendor hand-off without Vivado."""

import importlib.util
import json
import os
import stat
import sys

import numpy as np
import pytest
from qonnx.core.datatype import DataType

import compiler.steps  # noqa: F401
import compiler.vendor
from compiler.numerics import IntFormat, MinifloatFormat
from compiler.vendor import VendorToolMissing, find_vendor_tools, step_synthesize_bitfile

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "compiler" / "templates"))
import minifinn_io  # noqa: E402


@pytest.mark.parametrize("fmt", [MinifloatFormat(3, 2), MinifloatFormat(4, 3), MinifloatFormat(2, 1), IntFormat(4),
                                 IntFormat(8), IntFormat(5, signed=False)])
def test_pack_matches_finn_and_round_trips(fmt):
    from finn.util.data_packing import finnpy_to_packed_bytearray

    rng = np.random.default_rng(fmt.bits)
    values = fmt.values()[rng.integers(0, len(fmt.values()), size=(3, 4, 5))]
    table = [float(v) for v in fmt.decode(np.arange(2 ** fmt.bits))]
    codes = minifinn_io.encode(values, table)
    assert np.array_equal(codes, np.asarray(fmt.encode(values), dtype=np.uint32))
    packed = minifinn_io.pack(codes, fmt.bits)
    finn = finnpy_to_packed_bytearray(codes.astype(np.float32), DataType[f"UINT{fmt.bits}"], reverse_inner=True,
                                      reverse_endian=True)
    assert np.array_equal(packed, finn)
    back = minifinn_io.decode(minifinn_io.unpack(packed, fmt.bits, 5), table, fmt.bits)
    assert np.array_equal(back, values)


def test_encode_rejects_unquantized_values():
    table = [float(v) for v in MinifloatFormat(3, 2).decode(np.arange(64))]
    with pytest.raises(ValueError, match="not a value"):
        minifinn_io.encode(np.array([0.3]), table)


def _built(tmp_path, stop="step_hw_codegen"):
    from test_build_steps import _cfg, _qonnx  # noqa: E402

    from compiler.runner import run_build

    cfg = _cfg(tmp_path)
    cfg.stop_step = stop
    model = run_build(_qonnx(tmp_path), cfg, progress=False)
    return model, cfg


def test_driver_is_generated_and_packs_like_the_hardware_streams(tmp_path):
    model, cfg = _built(tmp_path)
    model = compiler.vendor.step_make_driver(model, cfg)
    ddir = tmp_path / "build" / "deploy" / "driver"
    shapes = json.loads((ddir / "io_shapes.json").read_text())
    assert shapes["ishape_normal"] == [1, 64] and shapes["oshape_normal"] == [1, 10]
    assert shapes["ishape_packed"][-1] == (shapes["ishape_folded"][-1] * 6 + 7) // 8  # E3M2 codes are 6 bits
    spec = importlib.util.spec_from_file_location("gen_driver", ddir / "driver.py")
    sys.path.insert(0, str(ddir))
    try:
        drv = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(drv)  # imports without pynq: the board-only import is inside the class
    finally:
        sys.path.remove(str(ddir))
    fmt = MinifloatFormat(3, 2)
    x = fmt.values()[np.random.default_rng(0).integers(0, 63, size=(2, 64))]
    packed = drv.MinifinnAccelerator.fold_and_pack(x)
    assert packed.shape == (2,) + tuple(shapes["ishape_packed"][1:])
    # the first stream word holds the first SIMD codes, element 0 in the LSBs
    simd = shapes["ishape_folded"][-1]
    word = int.from_bytes(bytes(packed[0, 0]), "little")
    codes = fmt.encode(x[0, :simd])
    assert all((word >> (6 * i)) & 63 == int(c) for i, c in enumerate(codes))


def test_bitfile_step_without_vivado_names_the_tool_and_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    model, cfg = _built(tmp_path, stop="step_make_driver")
    with pytest.raises(VendorToolMissing, match=r"vivado and vitis_hls not on PATH.*run: bash .*build_vivado.sh"):
        step_synthesize_bitfile(model, cfg)
    script = (tmp_path / "build" / "build_vivado.sh").read_text()
    assert "minifinn build" in script and "--start-step step_synthesize_bitfile" in script
    saved = json.loads((tmp_path / "build" / "build_config.json").read_text())
    assert saved["board"] == "Pynq-Z2" and saved["steps"][-1] == "step_synthesize_bitfile"
    # the saved config resumes at the vendor step (from the intermediate model of the step before it)
    from compiler.config import BuildConfig
    from compiler.runner import run_build

    resumed = BuildConfig.load(tmp_path / "build" / "build_config.json")
    resumed.start_step = "step_synthesize_bitfile"
    with pytest.raises(VendorToolMissing):
        run_build(str(tmp_path / "build" / "intermediate_models" / "qonnx_input.onnx"), resumed, progress=False)


def test_find_vendor_tools_detects_a_tool_on_path(tmp_path, monkeypatch):
    fake = tmp_path / "vivado"
    fake.write_text("#!/bin/sh\necho 'Vivado v2024.2 (64-bit)'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    tools = find_vendor_tools()
    assert tools["vivado"]["path"] == str(fake) and tools["vivado"]["version"] == "Vivado v2024.2 (64-bit)"
    assert "v++" not in tools
