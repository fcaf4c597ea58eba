"""Random requantizer cases for the three styles of MinifloatThresholding (tests/test_requant_styles.py and
tests/test_requant_cost.py): one exactly representable affine map per channel, as conversion parameters (M, B,
shift) and as the thresholds of the same map, so every style computes the same outputs; accumulators placed on the
rounding boundaries, at the range's ends and near zero; and an independent statement of the conversion contract
with Fractions."""

import bisect
from fractions import Fraction

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.util.basic import qonnx_make_model

from passes.requant_params import convert_params, params_initializer
from passes.thresholds import requant_thresholds


def channel_maps(fmt, channels, acc_bits, rng, scale_bits=16):
    """Per channel an integer-domain map ``m * acc + o`` as conversion parameters (M, B, shift): most with S-bit
    mantissas whose outputs span the format over the accumulator range (some saturating often, some mostly
    subnormal), the rest ties-friendly (``m = +-2^-j``, ``o`` a multiple of 1/2: many accumulators land exactly on a
    midpoint)."""
    top = float(fmt.max_int) if fmt.is_minifloat else float(max(fmt.max_int, 1))
    mults, offsets = [], []
    for c in range(channels):
        sign = -1 if rng.random() < 0.35 else 1
        if c % 3 == 2:
            j = int(rng.integers(0, max(1, acc_bits - int(np.log2(top)) + 1)))
            mults.append(Fraction(sign, 2**j))
            offsets.append(Fraction(int(rng.integers(-4, 5)), 2))
        else:
            spread = 2.0 ** rng.uniform(-4, 2)
            m = Fraction(float(np.float32(sign * spread * top / 2 ** (acc_bits - 1))))
            mults.append(m)
            offsets.append(Fraction(float(np.float32(rng.normal(0, top / 8)))))
    bits = int(rng.integers(max(2, scale_bits - 8), scale_bits + 1))
    return convert_params(mults, offsets, bits)


def case_tensors(fmt, channels, acc_bits, vecs, relu, seed, scale_bits=16):
    """(acc, thresholds, channel signs, params) of one case: the thresholds of the conversion parameters' exact
    maps (``passes.thresholds``), accumulators within ``acc_bits``."""
    rng = np.random.default_rng(seed)
    mults, biases, shifts = channel_maps(fmt, channels, acc_bits, rng, scale_bits)
    lo, hi = -(2 ** (acc_bits - 1)), 2 ** (acc_bits - 1) - 1
    a = [Fraction(m, 2**s) for m, s in zip(mults, shifts)]
    b = [Fraction(bb, 2**s) for bb, s in zip(biases, shifts)]
    # the format's values are the integer-domain values times 2^lsb: quantizer scale 2^-lsb
    t, signs = requant_thresholds(fmt, Fraction(2) ** -fmt.lsb_exponent, a, b, relu=bool(relu), acc_range=(lo, hi))
    t = np.asarray(t, dtype=np.int64)
    shape = (*vecs, channels)
    acc = rng.integers(lo, hi + 1, size=shape)
    pick = rng.random(shape)
    idx = rng.integers(0, t.shape[1], size=shape)
    boundary = t[np.arange(channels), idx] * np.asarray(signs) - rng.integers(0, 2, size=shape)
    acc = np.where(pick < 0.45, boundary, acc)  # on a threshold or one below: ties and their neighbours
    acc = np.where((pick >= 0.45) & (pick < 0.55), rng.integers(-8, 9, size=shape), acc)
    acc = np.where((pick >= 0.55) & (pick < 0.62), rng.choice([lo, hi], size=shape), acc)
    acc = np.clip(acc, lo, hi).astype(np.int64)
    return acc, t, signs, params_initializer(mults, biases, shifts)


def requant_model(fmt, channels, pe, acc_bits, vecs, style, relu=0, seed=0, scale_bits=16, **attrs):
    """A one-node MinifloatThresholding model of the case ``seed`` (thresholds as input 1, conversion parameters
    with scale mantissas of up to ``scale_bits`` bits as input 2) and its accumulators."""
    acc, t, signs, params = case_tensors(fmt, channels, acc_bits, vecs, relu, seed, scale_bits)
    node = helper.make_node(
        "MinifloatThresholding", ["acc", "T", "P"], ["y"], domain="finn.custom_op.fpgadataflow",
        backend="fpgadataflow", NumChannels=channels, PE=pe, inputDataType=f"INT{acc_bits}",
        outputDataType=fmt.qonnx_name, numInputVectors=list(vecs), requantStyle=style, convertRelu=int(relu),
        channel_signs=[int(s) for s in signs], narrowOutput=int(getattr(fmt, "narrow", False)), **attrs)
    graph = helper.make_graph([node], "requant", [helper.make_tensor_value_info("acc", TensorProto.FLOAT,
                                                                              [*vecs, channels])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [*vecs, channels])])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_initializer("T", t)
    model.set_initializer("P", params)
    return model.transform(GiveUniqueNodeNames()), acc


def fraction_reference(acc, params, relu, fmt):
    """The conversion contract stated independently: ``x = relu?(acc * M + B) / 2^shift`` as a Fraction, the nearest
    point of the format's integer grid (``int_values``), ties to the point with the even code, beyond the grid the
    end points; values of ``fmt`` (float32)."""
    grid = [int(v) for v in fmt.int_values()]
    even = {g: int(fmt.encode(np.array([np.ldexp(float(g), fmt.lsb_exponent)], dtype=np.float32))[0]) % 2 == 0
            for g in grid}
    acc = np.asarray(acc)
    out = np.empty(acc.shape, dtype=np.float64)
    for idx in np.ndindex(acc.shape):
        m, b, s = (int(v) for v in params[idx[-1]])
        p = int(acc[idx]) * m + b
        x = Fraction(max(p, 0) if relu else p, 2**s)
        if x >= grid[-1]:
            y = grid[-1]
        elif x <= grid[0]:
            y = grid[0]
        else:
            i = bisect.bisect_right(grid, x)
            lo, hi = grid[i - 1], grid[i]
            y = lo if x - lo < hi - x else hi if x - lo > hi - x else (lo if even[lo] else hi)
        out[idx] = np.ldexp(float(y), fmt.lsb_exponent)
    return out.astype(np.float32)


def tie_count(acc, params, relu, fmt):
    """How many accumulators convert to exactly the midpoint of two neighbouring points of the format's integer
    grid (the round-half-to-even cases)."""
    grid = [int(v) for v in fmt.int_values()]
    mids = {Fraction(lo + hi, 2) for lo, hi in zip(grid, grid[1:])}
    acc = np.asarray(acc)
    count = 0
    for idx in np.ndindex(acc.shape):
        m, b, s = (int(v) for v in params[idx[-1]])
        p = int(acc[idx]) * m + b
        count += Fraction(max(p, 0) if relu else p, 2**s) in mids
    return count
