"""MAC library: Verilog (Icarus) == HLS C++ (g++ + ap_types) == Python (compiler.numerics), bit for bit."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from compiler.numerics import IntFormat, MinifloatFormat, accumulator_bits
from compiler.synth import synthesize
from custom_ops.mac import ap_types_include_dir, hls_include_dir, operand_params, verilog_sources
from custom_ops.mac.packing import dsp_packing, packed_products, significand_range

HDL = Path(__file__).parent / "hdl"
needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None,
                                    reason="iverilog not installed (apt-get install iverilog)")
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


def _write_stimulus(path, codes_a, codes_b, clear, ab, bb):
    """One hex word per vector for the dot-product testbenches: the A codes in the LSBs (element 0 lowest), then the
    B codes, then the clear bit."""
    lines = []
    for ra, rb, c in zip(codes_a, codes_b, clear):
        word = int(c)
        for code in rb[::-1]:
            word = (word << bb) | int(code)
        for code in ra[::-1]:
            word = (word << ab) | int(code)
        lines.append(f"{word:x}")
    path.write_text("\n".join(lines) + "\n")


def _run_testbench(tmp_path, tb, params):
    """Icarus: the MAC library and tests/hdl/``tb`` with the parameters ``params`` of module ``tb``, run in
    ``tmp_path``; returns the rows of out.txt (whitespace-separated fields)."""
    cmd = ["iverilog", "-g2005", "-o", "sim.vvp", "-s", "tb"] + [f"-Ptb.{k}={v}" for k, v in params.items()]
    subprocess.run(cmd + [str(p) for p in verilog_sources()] + [str(HDL / tb)], cwd=tmp_path, check=True,
                   capture_output=True, text=True)
    subprocess.run(["vvp", "-n", "sim.vvp"], cwd=tmp_path, check=True, capture_output=True, text=True)
    return [line.split() for line in (tmp_path / "out.txt").read_text().split("\n") if line.strip()]


@needs_iverilog
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_verilog_dotp_and_mac_match_python(case, tmp_path):
    fa, fb, simd = case
    nvec = 64
    acc_bits = accumulator_bits(fa, fb, nvec * simd)
    codes_a, codes_b, clear = _vectors(fa, fb, simd, nvec, seed=simd * 31 + fa.bits)
    (ab, ae, asg), (bb, be, bsg) = operand_params(fa), operand_params(fb)
    _write_stimulus(tmp_path / "codes.hex", codes_a, codes_b, clear, ab, bb)
    params = dict(SIMD=simd, A_BITS=ab, A_E=ae, A_SIGNED=asg, B_BITS=bb, B_E=be, B_SIGNED=bsg, ACC_BITS=acc_bits,
                  NVEC=nvec)
    rows = _run_testbench(tmp_path, "tb_mf_dotp.v", params)
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
    got = [int(r[0]) for r in _run_testbench(tmp_path, "tb_mf_threshold.v", params)]
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


# --- DSP48 datapath: packed products (custom_ops/mac/packing.py, mf_mul_packed / mf_dotp_pe) ----------------------
E2M1, E3M2, E4M3 = MinifloatFormat(2, 1), MinifloatFormat(3, 2), MinifloatFormat(4, 3)
INT4, INT8, UINT4 = IntFormat(4), IntFormat(8), IntFormat(4, signed=False)
PACK_PAIRS = [(E2M1, E2M1), (E3M2, E3M2), (E4M3, E4M3), (INT4, INT4), (INT8, INT8), (UINT4, INT4), (INT8, E2M1)]


@pytest.mark.parametrize("fa,fw", PACK_PAIRS, ids=lambda f: f.name)
def test_packed_fields_read_back_every_product(fa, fw):
    """Every significand pair, next to neighbours at their extremes, reads back exactly from the packed product; the
    same packing without the bias needs the upper field corrected by the sign bit of the field below."""
    pa, pw = operand_params(fa), operand_params(fw)
    plan = dsp_packing(pa, pw, 8)
    k = plan.field
    assert plan.packed_bits <= 25 and plan.a_bits <= 18 and plan.pack >= 2
    (alo, ahi), (blo, bhi) = significand_range(*pa), significand_range(*pw)
    rng = np.random.default_rng(fa.bits * 16 + fw.bits)
    pairs = [(sa, sb) for sa in range(alo, ahi + 1) for sb in range(blo, bhi + 1)]
    if len(pairs) > 4000:
        pairs = [pairs[i] for i in rng.choice(len(pairs), 4000, replace=False)] + [(alo, blo), (alo, bhi), (ahi, blo)]
    needed_correction = False
    for sa, sb in pairs:
        assert -(2 ** (k - 1)) <= sa * sb < 2 ** (k - 1)
        n = plan.pack
        for j in range(n):
            for fill in (blo, bhi, 0):
                sbs = [fill] * n
                sbs[j] = sb
                sbs[(j + 1) % n] = int(rng.integers(blo, bhi + 1)) if n > 2 else sbs[(j + 1) % n]
                assert packed_products(sa, sbs, k) == [sa * v for v in sbs]
                # plain two's complement packing: field i read as signed, plus the sign bit below it
                p = sa * sum(v * 2 ** (i * k) for i, v in enumerate(sbs))
                fields = [((p >> (i * k)) & (2**k - 1)) for i in range(n)]
                plain = [f - 2**k if f >> (k - 1) else f for f in fields]
                corrected = [plain[0]] + [(fields[i] + ((p >> (i * k - 1)) & 1)) % 2**k for i in range(1, n)]
                corrected = [corrected[0]] + [c - 2**k if c >> (k - 1) else c for c in corrected[1:]]
                assert corrected == [sa * v for v in sbs]
                needed_correction |= plain != corrected
    assert needed_correction


def test_packing_plans():
    """Products per DSP48E1 (25 x 18) for the study's formats, PE = 8; a single short product stays in LUTs."""
    def plan(fa, fw, pe, cap=0):
        return dsp_packing(operand_params(fa), operand_params(fw), pe, cap)

    assert plan(E2M1, E2M1, 8).groups == (4, 4) and plan(E2M1, E2M1, 5).groups == (5,)
    assert plan(E3M2, E3M2, 8).groups == (4, 4) and plan(E3M2, E3M2, 8).packed_bits == 25
    assert plan(E4M3, E4M3, 8).groups == (3, 3, 2)
    assert plan(INT4, INT4, 8).groups == (3, 3, 2) and plan(INT8, INT8, 8).groups == (2, 2, 2, 2)
    assert plan(E4M3, E4M3, 8, cap=1).groups == (1,) * 8  # packing off
    assert plan(E4M3, E4M3, 1).mapped == (1,)  # 5 x 5 bits: a DSP48
    assert plan(E3M2, E3M2, 1).mapped == (0,) and plan(E3M2, E3M2, 2).mapped == (1,)  # 4 x 4 bits: LUTs
    assert plan(E4M3, E4M3, 4).dsps_per_lane == 2 and plan(E4M3, E4M3, 4).lut_products_per_lane == 0


def _dotp_pe_vectors(fa, fb, pe, simd, nvec, seed):
    rng = np.random.default_rng(seed)
    codes_a = rng.integers(0, 2**fa.bits, size=(nvec, simd))
    codes_b = rng.integers(0, 2**fb.bits, size=(nvec, pe * simd))
    ext_a = [int(fa.encode(np.array([v]))[0]) for v in (fa.values()[0], fa.values()[-1])]
    ext_b = [int(fb.encode(np.array([v]))[0]) for v in (fb.values()[0], fb.values()[-1])]
    for r, (xa, xb) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):  # extreme products of both signs in all lanes
        codes_a[r] = ext_a[xa]
        codes_b[r] = ext_b[xb]
        codes_b[r, ::3] = ext_b[1 - xb]
    clear = (rng.random(nvec) < 0.15).astype(int)
    clear[0] = 1
    return codes_a, codes_b, clear


def _dotp_pe_expected(fa, fb, pe, simd, codes_a, codes_b, clear):
    ia, _ = fa.to_int(codes_a)
    ib, _ = fb.to_int(codes_b)
    acc, out = [0] * pe, []
    for ra, rb, c in zip(ia, ib, clear):
        acc = [(0 if c else acc[p]) + sum(int(ra[i]) * int(rb[p * simd + i]) for i in range(simd)) for p in range(pe)]
        out.append(acc)
    return out


# (activation, weight, PE, SIMD, at most this many products per DSP48: 0 = as many as fit, 1 = packing off)
DOTP_PE_CASES = [
    (E2M1, E2M1, 4, 3, 0), (E3M2, E3M2, 6, 2, 0), (E4M3, E4M3, 4, 2, 0), (E4M3, E4M3, 3, 2, 1),
    (INT4, INT4, 5, 2, 0), (INT8, INT8, 3, 2, 0), (UINT4, INT4, 4, 1, 0), (INT8, E2M1, 2, 3, 0),
]


def _pe_id(case):
    return f"{case[0].name}x{case[1].name}_pe{case[2]}_simd{case[3]}_pack{case[4] or 'max'}"


def _dotp_pe_params(fa, fb, pe, simd, cap, use_dsp, nvec):
    (ab, ae, asg), (bb, be, bsg) = operand_params(fa), operand_params(fb)
    plan = dsp_packing((ab, ae, asg), (bb, be, bsg), pe, cap)
    return dict(PE=pe, SIMD=simd, A_BITS=ab, A_E=ae, A_SIGNED=asg, B_BITS=bb, B_E=be, B_SIGNED=bsg,
                ACC_BITS=accumulator_bits(fa, fb, nvec * simd), USE_DSP=use_dsp, **plan.hdl_params())


@needs_iverilog
@pytest.mark.parametrize("case", DOTP_PE_CASES, ids=_pe_id)
def test_verilog_dotp_pe_matches_python(case, tmp_path):
    fa, fb, pe, simd, cap = case
    nvec = 40
    codes_a, codes_b, clear = _dotp_pe_vectors(fa, fb, pe, simd, nvec, seed=pe * 13 + simd)
    want = _dotp_pe_expected(fa, fb, pe, simd, codes_a, codes_b, clear)
    ab, bb = fa.bits, fb.bits
    _write_stimulus(tmp_path / "codes.hex", codes_a, codes_b, clear, ab, bb)
    for use_dsp in (1, 0):
        params = dict(_dotp_pe_params(fa, fb, pe, simd, cap, use_dsp, nvec), NVEC=nvec)
        rows = _run_testbench(tmp_path, "tb_mf_dotp_pe.v", params)
        assert [[_to_signed(v, params["ACC_BITS"]) for v in r] for r in rows] == want, f"use_dsp={use_dsp}"


@needs_gxx
@pytest.mark.parametrize("case", DOTP_PE_CASES, ids=_pe_id)
def test_hls_cpp_dotp_pe_matches_python(case, tmp_path):
    fa, fb, pe, simd, cap = case
    nvec = 40
    codes_a, codes_b, clear = _dotp_pe_vectors(fa, fb, pe, simd, nvec, seed=pe * 17 + simd)
    want = _dotp_pe_expected(fa, fb, pe, simd, codes_a, codes_b, clear)
    defs = _dotp_pe_params(fa, fb, pe, simd, cap, 1, nvec)
    defs["USE_DSP"] = "true"
    exe = tmp_path / "tb"
    subprocess.run(["g++", "-std=c++14", "-O1", f"-I{ap_types_include_dir()}", f"-I{hls_include_dir()}"]
                   + [f"-DTB_{k}={v}" for k, v in defs.items()] + [str(HDL / "mf_dotp_pe_tb.cpp"), "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    stdin = "\n".join(" ".join(str(int(v)) for v in [c, *ra, *rb]) for ra, rb, c in zip(codes_a, codes_b, clear))
    out = subprocess.run([str(exe)], input=stdin, check=True, capture_output=True, text=True).stdout
    assert [[int(v) for v in line.split()] for line in out.strip().split("\n")] == want


@pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not installed (apt-get install yosys)")
@pytest.mark.parametrize("fa,fw,pe,saves", [(E4M3, E4M3, 4, True),
                                            pytest.param(E2M1, E2M1, 4, False, marks=pytest.mark.slow),
                                            pytest.param(INT8, INT8, 2, True, marks=pytest.mark.slow)],
                         ids=["e4m3_pe4", "e2m1_pe4", "int8_pe2"])
def test_yosys_maps_the_packed_products_to_dsp48(fa, fw, pe, saves, tmp_path):
    """USE_DSP = 1: Yosys synth_xilinx (DSP inference on) maps exactly the plan's DSP48E1s. Fewer LUTs remain than in
    the LUT datapath (synthesized with -nodsp, as the estimates assume) where the products are wide; 3 x 3-bit E2M1
    significand products cost about what packing and reading back the fields costs (the estimate's dsp_* terms)."""
    simd = 2
    res = {}
    for use_dsp in (0, 1):
        params = _dotp_pe_params(fa, fw, pe, simd, 0, use_dsp, 64)
        res[use_dsp] = synthesize(verilog_sources(), top="mf_dotp_pe", params=params, dsp=bool(use_dsp),
                                  cache_dir=tmp_path)
    plan = dsp_packing(operand_params(fa), operand_params(fw), pe)
    assert res[1].dsp == simd * plan.dsps_per_lane > 0 and res[0].dsp == 0
    if saves:
        assert res[1].lut_total < 0.9 * res[0].lut_total
    else:
        assert res[1].lut_total < 1.1 * res[0].lut_total
