"""Exact requantization thresholds: a quantizer applied to an affine function of an integer accumulator.

Reference semantics (docs/lowered_graph.md): a quantizer with scale ``s`` and format ``F`` applied to the real
number ``y = relu?(a * acc + b)`` returns ``F.round(y / s)`` evaluated **exactly** (no fp32 rounding of ``y / s``),
with ``F``'s round-half-to-even tie policy and saturation. ``a``, ``b``, ``s`` are exact rationals (every fp32 /
fp64 parameter is a dyadic rational; batch norm's ``1/sqrt(var + eps)`` is taken as its float64 value).

With ``v_0 < ... < v_N`` the values of ``F`` and midpoints ``m_i = (v_i + v_{i+1}) / 2``, ``y / s`` rounds to at
least ``v_{i+1}`` iff ``y >= s * m_i`` when the tie ``m_i`` rounds up (to ``v_{i+1}``), iff ``y > s * m_i`` when it
rounds down. Solving for the integer ``acc`` gives integer thresholds ``T[c, i]`` with
``out = v[#{i : sign_c * acc >= T[c, i]}]``, ``sign_c`` the sign of ``a_c``.

A clip ``clip(y, lo, hi)`` before the quantizer (ReLU6, ``torch.clamp``): rounding is monotonic, so the output index
of the clipped value is the output index of ``y`` clamped to ``[j(lo), j(hi)]``, ``j`` the exact index of a bound;
the thresholds below ``j(lo)`` become always passed, those from ``j(hi)`` on never passed.
"""

import math
from fractions import Fraction

import numpy as np

from compiler.errors import UnsupportedNodeError
from compiler.numerics import as_fraction, tie_rounds_up
from custom_ops.general.common import threshold_initializer


def output_index(fmt, out_scale, y):
    """The index in ``fmt.values()`` of ``fmt.round(y / out_scale)`` for an exact rational ``y`` (the tie policy of
    ``tie_rounds_up``)."""
    s = as_fraction(out_scale)
    mids, up = tie_rounds_up(fmt)
    y = as_fraction(y)
    return sum(1 for m, tie_up in zip(mids, up) if (y >= s * m if tie_up else y > s * m))


def requant_thresholds(fmt, out_scale, a, b, relu=False, acc_range=None, clip=None):
    """Integer thresholds ``T`` (C, N) and channel signs for ``fmt.round(clip?(relu?(a_c * acc + b_c)) / out_scale)``,
    ``clip = (lo, hi)`` exact bounds (either None: unbounded).

    ``a``, ``b``: sequences of C exact rationals (floats accepted); ``out_scale > 0``. ``acc_range = (lo, hi)``
    clips the thresholds to ``[lo, hi + 1]`` (semantics-preserving for accumulators inside the range); thresholds
    that are always passed become ``lo``, never passed ``hi + 1``. Without a range, always/never use ``-2**63`` /
    ``2**63 - 1`` (the int64 extremes; passes/datatypes.py clips them to the accumulator's range afterwards).
    Returns ``(T, signs as a list of +1/-1)``, ``T`` as ``custom_ops.general.common.threshold_initializer`` stores
    it: int64, or decimal strings when a threshold is beyond int64 (accumulators of 5-6 exponent-bit formats).
    """
    s = as_fraction(out_scale)
    if s <= 0:
        raise UnsupportedNodeError(f"quantizer scale must be positive, got {float(s)}")
    mids, up = tie_rounds_up(fmt)
    lo, hi = acc_range if acc_range is not None else (-(2**63), 2**63 - 2)
    n = len(mids)
    j_lo, j_hi = 0, n
    if clip is not None:
        j_lo = 0 if clip[0] is None else output_index(fmt, s, clip[0])
        j_hi = n if clip[1] is None else output_index(fmt, s, clip[1])
    rows, signs = [], []
    for a_c, b_c in zip(a, b):
        a_c, b_c = as_fraction(a_c), as_fraction(b_c)
        sign = -1 if a_c < 0 else 1
        # range of u = sign * acc
        always, never = (int(lo), int(hi) + 1) if sign > 0 else (-int(hi), -int(lo) + 1)
        row = []
        for i, (m, tie_up) in enumerate(zip(mids, up)):
            if i < j_lo or i >= j_hi:  # the clip's bounds: the index stays in [j_lo, j_hi]
                row.append(always if i < j_lo else never)
                continue
            t = s * m
            if relu and (t < 0 or (t == 0 and tie_up)):
                row.append(always)  # relu(y) >= 0 >= t
                continue
            # pass condition: y >= t (tie_up) or y > t; y = a*acc + b; with u = sign*acc: |a|*u >= t - b
            if a_c == 0:
                passes = (b_c >= t) if tie_up else (b_c > t)
                row.append(always if passes else never)
                continue
            q = (t - b_c) / abs(a_c)
            th = math.ceil(q) if tie_up else math.floor(q) + 1
            if acc_range is None and not -(2**63) < th < 2**63 - 1:
                raise UnsupportedNodeError(
                    f"a threshold of the {fmt.name} requantizer is {th}, beyond 64 bits, and the range of the "
                    "accumulator in front of it is unknown, so it cannot be clipped or stored exactly; lower the "
                    "graph with passes.lower_qonnx (which knows the accumulator's range) or use formats with at most "
                    "4 exponent bits here"
                )
            row.append(min(max(th, always), never))
        rows.append(row)
        signs.append(sign)
    arr = np.array(rows, dtype=object)
    return threshold_initializer(arr), signs


def requant_affine(fmt, out_scale, a, b):
    """The requantizer's exact affine map in the output format's integer domain, per channel: ``m_c = a_c / (s *
    2^lsb)``, ``o_c = b_c / (s * 2^lsb)`` as ``"p/q;p/q"`` strings (``affine_strings`` / ``parse_affine``), the
    input of requantization by conversion (passes/requant_params.py)."""
    unit = as_fraction(out_scale) * Fraction(2) ** fmt.lsb_exponent
    return affine_strings([as_fraction(x) / unit for x in a], [as_fraction(x) / unit for x in b])


def affine_strings(multipliers, offsets):
    return [f"{m.numerator}/{m.denominator};{o.numerator}/{o.denominator}" for m, o in zip(multipliers, offsets)]


def parse_affine(strings):
    """``(multipliers, offsets)`` as Fractions from ``affine_strings``' encoding (bytes accepted)."""
    mults, offsets = [], []
    for text in strings:
        text = text.decode() if isinstance(text, bytes) else text
        m, o = text.split(";")
        mults.append(Fraction(m))
        offsets.append(Fraction(o))
    return mults, offsets
