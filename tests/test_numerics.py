"""compiler.numerics: bit-identical to qonnx float_quant / int_quant and to Brevitas; exact codes; accumulators."""

import math

import numpy as np
import pytest
import torch
from qonnx.core.datatype import DataType
from qonnx.custom_op.general.floatquant import float_quant
from qonnx.custom_op.general.intquant import int_quant

from compiler.errors import FormatError
from compiler.numerics import (
    IntFormat,
    MinifloatFormat,
    accumulator_bits,
    accumulator_bits_exact,
    accumulator_bits_from_weights,
    parse_format,
)

ALL_FORMATS = [(e, m) for e in range(1, 6) for m in range(1, 7) if 3 <= 1 + e + m <= 8]
N_RANDOM = 100_000


def _random_inputs(fmt, seed):
    """Log-uniform magnitudes from well below the smallest subnormal to well beyond max, both signs."""
    rng = np.random.default_rng(seed)
    lo, hi = math.log2(fmt.min_subnormal) - 3, math.log2(fmt.max) + 3
    mags = np.exp2(rng.uniform(lo, hi, N_RANDOM))
    return (mags * rng.choice([-1.0, 1.0], N_RANDOM)).astype(np.float32)


def _edge_inputs(fmt):
    vals = fmt.values().astype(np.float64)
    mids = (vals[1:] + vals[:-1]) / 2  # exact ties between neighbours (representable in float32 for <= 8 bits)
    sub = fmt.min_subnormal
    normal_min = 2.0 ** (1 - fmt.exponent_bias)
    edges = [0.0, -0.0, sub, -sub, sub / 2, -sub / 2, sub / 4, normal_min, normal_min - sub, normal_min - sub / 2,
             fmt.max, -fmt.max, fmt.max * 1.01, -fmt.max * 1.01, fmt.max * 1e3, -fmt.max * 1e3,
             fmt.max + 2.0 ** (math.log2(fmt.max) - fmt.mantissa_bits - 1)]
    return np.concatenate([vals, mids, np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf), edges]).astype(
        np.float32
    )


def _qonnx(fmt, x, scale):
    return float_quant(x, np.float32(scale), fmt.exponent_bits, fmt.mantissa_bits, fmt.exponent_bias, True,
                       np.float32(fmt.max), False, False, True, "ROUND", True).astype(np.float32)


def _brevitas(fmt, x, range_value):
    """Brevitas' own minifloat activation quantizer with a fixed (parameter) scale; returns (values, scale)."""
    from brevitas.inject.enum import ScalingImplType
    from brevitas.nn import QuantIdentity
    from brevitas.quant.float import Fp8e4m3ActPerTensorFloat

    quant = Fp8e4m3ActPerTensorFloat.let(
        bit_width=fmt.bits, exponent_bit_width=fmt.exponent_bits, mantissa_bit_width=fmt.mantissa_bits,
        exponent_bias=fmt.exponent_bias, max_available_float=fmt.max,
        scaling_impl_type=ScalingImplType.PARAMETER, scaling_init=range_value,
    )
    layer = QuantIdentity(act_quant=quant, return_quant_tensor=True).eval()
    with torch.no_grad():
        out = layer(torch.from_numpy(x))
    return out.value.numpy(), np.float32(out.scale.detach().numpy())


@pytest.mark.parametrize("e,m", ALL_FORMATS, ids=[f"e{e}m{m}" for e, m in ALL_FORMATS])
def test_quantize_identical_to_qonnx_and_brevitas(e, m):
    fmt = MinifloatFormat(e, m)
    x = np.concatenate([_random_inputs(fmt, seed=e * 10 + m), _edge_inputs(fmt)])
    for scale in (1.0, 0.3712):
        ours = fmt.quantize(x, scale)
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(ours, _qonnx(fmt, x, scale))
    # Brevitas: scale = range / max computed inside Brevitas; use exactly the scale it reports.
    bq, bscale = _brevitas(fmt, x * np.float32(0.5), 0.5 * fmt.max)
    np.testing.assert_array_equal(fmt.quantize(x * np.float32(0.5), bscale), bq)
    # codes round-trip exactly, unscaled values are on the grid
    q = fmt.quantize(x)
    np.testing.assert_array_equal(fmt.decode(fmt.encode(q)), q)
    assert set(np.unique(q)).issubset(set(fmt.values()))


def test_edge_cases_e4m3():
    fmt = MinifloatFormat(4, 3)
    assert (fmt.exponent_bias, fmt.max, fmt.min_subnormal) == (7, 480.0, 2.0**-9)
    q = fmt.quantize(np.array([1000.0, -1000.0, 2.0**-10, 2.0**-10 * 1.0001, 1.0625, 1.1875, 0.0], np.float32))
    # saturate, smallest subnormal/2 ties to even (0), ties to even: 1.0625 -> 1.0, 1.1875 -> 1.25
    np.testing.assert_array_equal(q, np.array([480, -480, 0, 2.0**-9, 1.0, 1.25, 0], np.float32))
    assert MinifloatFormat(3, 2).max == 28 and MinifloatFormat(2, 3).max == 7.5 and MinifloatFormat(2, 1).max == 6


@pytest.mark.parametrize("e,m", ALL_FORMATS, ids=[f"e{e}m{m}" for e, m in ALL_FORMATS])
def test_codes_values_and_ints(e, m):
    fmt = MinifloatFormat(e, m)
    codes = np.arange(2**fmt.bits, dtype=np.uint8)
    vals = fmt.decode(codes)
    assert len(fmt.values()) == 2**fmt.bits - 1  # +-0 collapse
    np.testing.assert_array_equal(np.unique(vals), fmt.values())
    re = fmt.encode(vals)
    np.testing.assert_array_equal(fmt.decode(re), vals)
    nonzero = vals != 0
    np.testing.assert_array_equal(re[nonzero], codes[nonzero])  # codes are canonical except -0
    ints, lsb = fmt.to_int(codes)
    np.testing.assert_array_equal(np.ldexp(ints.astype(np.float64), lsb), vals.astype(np.float64))
    assert max(abs(int(i)) for i in ints) == fmt.max_int
    np.testing.assert_array_equal(np.ldexp(fmt.int_values().astype(np.float64), lsb), fmt.values())
    dt = DataType[fmt.qonnx_name]
    assert dt.bitwidth() == fmt.bits and all(dt.allowed(float(v)) for v in fmt.values())
    assert MinifloatFormat.from_qonnx(fmt.qonnx_name) == fmt
    assert MinifloatFormat.parse(fmt.name) == fmt and parse_format("fp:" + fmt.name) == fmt


def test_value_formula_of_a_code():
    fmt = MinifloatFormat(3, 2)  # bias 3
    # s=1, e=0b101=5, f=0b10=2: -(4 + 2) * 2^(5 - 3 - 2) = -6
    assert fmt.decode(np.array([0b1_101_10], np.uint8))[0] == -6.0
    # subnormal s=0 e=0 f=1: 1 * 2^(1 - 3 - 2) = 1/16
    assert fmt.decode(np.array([0b0_000_01], np.uint8))[0] == 1 / 16
    assert fmt.encode(np.array([-6.0, 1 / 16, -0.0]))[0] == 0b1_101_10


def test_non_default_bias_and_wide_formats():
    fmt = MinifloatFormat(3, 2, exponent_bias=5)
    assert fmt.name == "e3m2b5" and fmt.max == 7.0 and MinifloatFormat.from_qonnx("FLOAT<3,2,5>") == fmt
    x = _random_inputs(fmt, 1)
    np.testing.assert_array_equal(fmt.quantize(x), _qonnx(fmt, x, 1.0))
    e6m1 = MinifloatFormat(6, 1)  # max_int > 2^62: exact Python-int significands
    ints, lsb = e6m1.to_int(np.array([0x7F, 0xFF], np.uint8))
    assert int(ints[0]) == e6m1.max_int == 3 * 2**62 and int(ints[1]) == -(3 * 2**62)


@pytest.mark.parametrize("bits,signed,narrow", [(2, True, False), (3, True, False), (4, True, True),
                                                (4, False, False), (8, True, False), (8, True, True)])
def test_int_format_matches_qonnx(bits, signed, narrow):
    fmt = IntFormat(bits, signed, narrow)
    rng = np.random.default_rng(bits)
    x = np.concatenate([rng.uniform(-3 * 2**bits, 3 * 2**bits, N_RANDOM), np.arange(-2**bits, 2**bits) + 0.5])
    x = x.astype(np.float32)
    for scale in (1.0, 0.173):
        ref = int_quant(x, np.float32(scale), np.float32(0), np.float32(bits), signed, narrow, "ROUND").astype(np.float32)
        np.testing.assert_array_equal(fmt.quantize(x, scale), ref)
    q = fmt.quantize(x)
    np.testing.assert_array_equal(fmt.decode(fmt.encode(q)), q)
    assert len(fmt.values()) == 2**bits - (1 if narrow else 0)
    assert IntFormat.from_qonnx(fmt.qonnx_name).bits == bits and parse_format(fmt.name) == fmt
    assert all(fmt.datatype.allowed(float(v)) for v in fmt.values())


def test_parse_format_forms():
    assert parse_format("fp:e3m2") == MinifloatFormat(3, 2) == parse_format("E3M2")
    assert parse_format("int:4") == IntFormat(4) == parse_format("INT4")
    assert parse_format("uint:8") == IntFormat(8, signed=False)
    assert parse_format("FLOAT<4,3,7>") == MinifloatFormat(4, 3)
    assert parse_format("float") is None and parse_format("fp32") is None


def test_accumulator_bits_paper_examples():
    n = 4608
    fp = MinifloatFormat
    assert accumulator_bits(IntFormat(8), IntFormat(8), n) == 30
    expected = {(2, 3): 26, (3, 2): 32, (3, 3): 34, (4, 3): 50}
    for (e, m), bits in expected.items():
        assert accumulator_bits(fp(e, m), fp(e, m), n) == bits
    assert accumulator_bits(fp(5, 2), fp(5, 2, max_bits=8), n) == 80
    # the exact worst case never needs more than the paper's formula
    for e, m in ALL_FORMATS:
        f = fp(e, m)
        assert accumulator_bits_exact(f, f, n) <= accumulator_bits(f, f, n)


def test_data_aware_accumulator_is_tight():
    rng = np.random.default_rng(3)
    act = MinifloatFormat(2, 1)  # ints in [-12, 12]
    w = rng.integers(-7, 8, size=(16, 5))
    bits = accumulator_bits_from_weights(w, act)
    amax = int(act.int_values()[-1])
    worst = np.abs(w).sum(axis=0) * amax  # attained by a = sign(w) * amax
    assert bits == int(worst.max()).bit_length() + 1
    a = rng.choice(act.int_values(), size=(1000, 16))
    acc = a @ w
    assert np.abs(acc).max() < 2 ** (bits - 1)
    a_star = np.sign(w[:, int(worst.argmax())]) * amax
    assert abs(int(a_star @ w[:, int(worst.argmax())])) >= 2 ** (bits - 2)  # one bit fewer would overflow
    assert bits <= accumulator_bits(IntFormat(4), act, 16)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: MinifloatFormat(0, 3), "exponent_bits must be an integer >= 1"),
        (lambda: MinifloatFormat(3, -1), "mantissa_bits must be an integer >= 0"),
        (lambda: MinifloatFormat(5, 4), "at most 8 bits"),
        (lambda: MinifloatFormat(5, 2, exponent_bias=-200), "overflow float32"),
        (lambda: IntFormat(1), "2..32 bits"),
        (lambda: parse_format("fp8"), "accepted"),
        (lambda: MinifloatFormat(3, 2).encode([1.0, np.nan]), "only finite numbers"),
        (lambda: IntFormat(4).encode([np.inf]), "only finite numbers"),
        (lambda: MinifloatFormat(3, 2).encode([1.1]), "not representable in e3m2"),
        (lambda: IntFormat(4).encode([9]), "not representable in int4"),
    ],
)
def test_invalid_inputs_raise_clear_errors(make, match):
    with pytest.raises(FormatError, match=match):
        make()
    assert issubclass(FormatError, ValueError)


def test_non_finite_inputs_quantize_as_in_qonnx():
    """NaN -> NaN in both kinds; +-inf -> NaN in a minifloat (qonnx float_quant), +-max in an integer (int_quant)."""
    x = np.array([np.nan, np.inf, -np.inf, 1.3, -2.6], dtype=np.float32)
    for e, m in ALL_FORMATS:
        fmt = MinifloatFormat(e, m)
        for scale in (1.0, 0.3712):
            np.testing.assert_array_equal(fmt.quantize(x, scale), _qonnx(fmt, x, scale))  # NaN == NaN here
    assert np.isnan(MinifloatFormat(3, 2).quantize(x)[:3]).all()
    for bits, signed, narrow in [(4, True, False), (4, True, True), (8, False, False)]:
        ref = int_quant(x, np.float32(0.5), np.float32(0), np.float32(bits), signed, narrow, "ROUND")
        np.testing.assert_array_equal(IntFormat(bits, signed, narrow).quantize(x, 0.5), ref.astype(np.float32))
    assert IntFormat(4).quantize([np.inf, -np.inf]).tolist() == [7.0, -8.0]


@pytest.mark.parametrize("scale,why", [(0.0, "is 0"), (-1.0, "is negative"), (np.nan, "is not finite"),
                                       (np.inf, "is not finite"), (1e-45, "is subnormal"),
                                       ([1.0, 0.0], "at index 1 is 0")])
@pytest.mark.parametrize("fmt", [MinifloatFormat(3, 2), IntFormat(4)], ids=["e3m2", "int4"])
def test_invalid_scales_raise_clear_errors(fmt, scale, why):
    with pytest.raises(FormatError, match=why):
        fmt.quantize(np.ones(2, np.float32), scale)


def test_overflowing_quotient_raises_for_minifloats_and_saturates_integers():
    with pytest.raises(FormatError, match="x / scale overflows float32"):
        MinifloatFormat(3, 2).quantize([3e38], 0.5)
    assert IntFormat(4).quantize([3e38], 0.5).tolist() == [3.5]  # int_quant clips the inf quotient


def test_wide_integers_are_described_without_listing_their_values():
    wide = IntFormat(32)
    assert wide.int_range() == (-(2**31), 2**31 - 1)
    with pytest.raises(FormatError, match="2\\^32 values.*at most 24 bits"):
        wide.values()
    assert accumulator_bits_exact(wide, IntFormat(4), 8) == 39  # 8 * (-2^31) * (-8) = 2^37 needs 39 bits
    assert accumulator_bits_exact(IntFormat(8), IntFormat(8), 1) == 16  # (-128)^2 = 2^14 needs 16 signed bits
