"""MAC library: Verilog (Icarus) == HLS C++ (g++ + ap_types) == Python (compiler.numerics), bit for bit."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from compiler.numerics import IntFormat, MinifloatFormat, accumulator_bits
from custom_ops.mac import ap_types_include_dir, hls_include_dir, operand_params, verilog_sources

HDL = Path(__file__).parent / "hdl"
needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed (apt-get install iverilog)")
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")

# (weight format, activation format, SIMD): a seeded, representative sample of equal and mixed pairs
CASES = [
    (MinifloatFormat(4, 3), MinifloatFormat(4, 3), 4),
    (MinifloatFormat(2, 1), MinifloatFormat(3, 2), 8),
    (MinifloatFormat(5, 2), MinifloatFormat(5, 2), 2),
    (MinifloatFormat(1, 2), MinifloatFormat(2, 5), 3),
    (IntFormat(4), MinifloatFormat(4, 3), 4),
    (IntFormat(8), IntFormat(8), 8),
    (IntFormat(3), IntFormat(5, signed=False), 1),
    (MinifloatFormat(3, 4), IntFormat(6, signed=False), 5),
]


def _ids(case):
    return f"{case[0].name}x{case[1].name}_simd{case[2]}"


def _vectors(fa, fb, simd, nvec, seed):
    rng = np.random.default_rng(seed)
    codes_a = rng.integers(0, 2**fa.bits, size=(nvec, simd))
    codes_b = rng.integers(0, 2**fb.bits, size=(nvec, simd))
    # extremes: +-max in every lane for a few vectors, so the accumulator's full range is exercised
    hi_a = int(fa.encode(np.array([fa.values()[-1]]))[0])
    lo_a = int(fa.encode(np.array([fa.values()[0]]))[0])
    hi_b = int(fb.encode(np.array([fb.values()[-1]]))[0])
    codes_a[:3] = [[hi_a], [lo_a], [lo_a]]
    codes_b[:3] = [[hi_b], [hi_b], [hi_b]]
    clear = (rng.random(nvec) < 0.15).astype(int)
    clear[0] = 1
    return codes_a, codes_b, clear


def _expected(fa, fb, codes_a, codes_b, clear):
    ia, _ = fa.to_int(codes_a)
    ib, _ = fb.to_int(codes_b)
    sums = [sum(int(x) * int(y) for x, y in zip(ra, rb)) for ra, rb in zip(ia, ib)]
    first = [int(x) * int(y) for x, y in zip(ia[:, 0], ib[:, 0])]
    acc = acc1 = 0
    out, out1 = [], []
    for s, f, c in zip(sums, first, clear):
        acc = (0 if c else acc) + s
        acc1 = (0 if c else acc1) + f
        out.append(acc)
        out1.append(acc1)
    return out, out1


def _to_signed(hex_text, bits):
    v = int(hex_text, 16)
    return v - (1 << bits) if v >> (bits - 1) else v


@needs_iverilog
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_verilog_dotp_and_mac_match_python(case, tmp_path):
    fa, fb, simd = case
    nvec = 64
    acc_bits = accumulator_bits(fa, fb, nvec * simd)
    codes_a, codes_b, clear = _vectors(fa, fb, simd, nvec, seed=simd * 31 + fa.bits)
    (ab, ae, asg), (bb, be, bsg) = operand_params(fa), operand_params(fb)
    lines = []
    for ra, rb, c in zip(codes_a, codes_b, clear):
        word = int(c)
        for code in rb[::-1]:
            word = (word << bb) | int(code)
        for code in ra[::-1]:
            word = (word << ab) | int(code)
        lines.append(f"{word:x}")
    (tmp_path / "codes.hex").write_text("\n".join(lines) + "\n")
    params = dict(SIMD=simd, A_BITS=ab, A_E=ae, A_SIGNED=asg, B_BITS=bb, B_E=be, B_SIGNED=bsg, ACC_BITS=acc_bits,
                  NVEC=nvec)
    cmd = ["iverilog", "-g2005", "-o", "sim.vvp", "-s", "tb"] + [f"-Ptb.{k}={v}" for k, v in params.items()]
    subprocess.run(cmd + [str(p) for p in verilog_sources()] + [str(HDL / "tb_mf_dotp.v")], cwd=tmp_path,
                   check=True, capture_output=True, text=True)
    subprocess.run(["vvp", "-n", "sim.vvp"], cwd=tmp_path, check=True, capture_output=True, text=True)
    rows = [line.split() for line in (tmp_path / "out.txt").read_text().split("\n") if line.strip()]
    got = [_to_signed(r[0], acc_bits) for r in rows]
    got_mac = [_to_signed(r[1], acc_bits) for r in rows]
    want, want_mac = _expected(fa, fb, codes_a, codes_b, clear)
    assert got == want
    assert got_mac == want_mac


@needs_gxx
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_hls_cpp_dotp_matches_python(case, tmp_path):
    fa, fb, simd = case
    nvec = 64
    acc_bits = accumulator_bits(fa, fb, nvec * simd)
    codes_a, codes_b, clear = _vectors(fa, fb, simd, nvec, seed=simd * 7 + fb.bits)
    (ab, ae, asg), (bb, be, bsg) = operand_params(fa), operand_params(fb)
    defs = dict(SIMD=simd, A_BITS=ab, A_E=ae, A_SIGNED=asg, B_BITS=bb, B_E=be, B_SIGNED=bsg, ACC_BITS=acc_bits)
    exe = tmp_path / "tb"
    subprocess.run(["g++", "-std=c++14", "-O1", f"-I{ap_types_include_dir()}", f"-I{hls_include_dir()}"]
                   + [f"-DTB_{k}={v}" for k, v in defs.items()] + [str(HDL / "mf_dotp_tb.cpp"), "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    stdin = "\n".join(" ".join(str(int(v)) for v in [c, *ra, *rb]) for ra, rb, c in zip(codes_a, codes_b, clear))
    out = subprocess.run([str(exe)], input=stdin, check=True, capture_output=True, text=True).stdout
    want, _ = _expected(fa, fb, codes_a, codes_b, clear)
    assert [int(v) for v in out.split()] == want


@needs_iverilog
def test_verilog_threshold_counts(tmp_path):
    rng = np.random.default_rng(5)
    acc_bits, n = 12, 15
    thr = np.sort(rng.integers(-1500, 1500, size=n))
    acc = np.concatenate([rng.integers(-2048, 2048, size=200), thr, thr - 1])
    mask = (1 << acc_bits) - 1
    (tmp_path / "thr.hex").write_text("\n".join(f"{int(t) & mask:x}" for t in thr) + "\n")
    (tmp_path / "acc.hex").write_text("\n".join(f"{int(a) & mask:x}" for a in acc) + "\n")
    params = dict(ACC_BITS=acc_bits, N=n, OUT_BITS=4, NVEC=len(acc))
    cmd = ["iverilog", "-g2005", "-o", "sim.vvp", "-s", "tb"] + [f"-Ptb.{k}={v}" for k, v in params.items()]
    subprocess.run(cmd + [str(p) for p in verilog_sources()] + [str(HDL / "tb_mf_threshold.v")], cwd=tmp_path,
                   check=True, capture_output=True, text=True)
    subprocess.run(["vvp", "-n", "sim.vvp"], cwd=tmp_path, check=True, capture_output=True, text=True)
    got = [int(v) for v in (tmp_path / "out.txt").read_text().split()]
    assert got == [int(np.sum(a >= thr)) for a in acc]


def test_operand_params_and_widths():
    from custom_ops.mac import decoded_width

    assert operand_params(MinifloatFormat(3, 2)) == (6, 3, 1)
    assert operand_params(IntFormat(4, signed=False)) == (4, 0, 0)
    for fmt in (MinifloatFormat(4, 3), MinifloatFormat(2, 1), IntFormat(8), IntFormat(3, signed=False)):
        bits, e, signed = operand_params(fmt)
        width = decoded_width(bits, e, bool(signed))
        lo, hi = int(fmt.int_values()[0]), int(fmt.int_values()[-1])
        assert -(2 ** (width - 1)) <= lo and hi <= 2 ** (width - 1) - 1  # the decoded value fits
        assert hi > 2 ** (width - 2) - 1 or lo < -(2 ** (width - 2))  # and needs every bit


@pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not installed (apt-get install yosys)")
def test_yosys_synthesizes_minifloat_and_int_mac(tmp_path):
    from compiler.synth import synthesize

    costs = {}
    for fmt in (MinifloatFormat(3, 2), IntFormat(6)):
        bits, e, signed = operand_params(fmt)
        params = dict(A_BITS=bits, A_E=e, A_SIGNED=signed, B_BITS=bits, B_E=e, B_SIGNED=signed,
                      ACC_BITS=accumulator_bits(fmt, fmt, 512))
        res = synthesize(verilog_sources(), top="mf_mac", params=params, cache_dir=tmp_path)
        assert res.lut > 0 and res.ff == params["ACC_BITS"] and res.dsp == 0
        costs[fmt.name] = res.lut
    # the minifloat MAC multiplies 3-bit significands, not its 11-bit decoded values: far below an 11x11 multiplier
    wide = synthesize([("wide.v", "module wide(input signed [10:0] a, b, output signed [21:0] p); "
                                  "assign p = a * b; endmodule")], top="wide", cache_dir=tmp_path)
    assert costs["e3m2"] < wide.lut
