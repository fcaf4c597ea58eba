"""DSP48 packing of the MAC library's significand products: which products share one DSP48E1 multiplier.

In an MVAU the PE output channels of one SIMD lane multiply the same activation code, so their weight significands
can share one multiplier (``mf_mul_packed`` in mf_mac.v, its twin in mf_mac.hpp): with K-bit fields,

    B = sum_j sb_j * 2^(j*K)            (the packed weight operand, at most 25 bits signed: the DSP48E1's A port)
    P = sa * B + C,  C = sum_{j<N-1} 2^(j*K + K-1)

and every product ``sa * sb_j`` in [-2^(K-1), 2^(K-1)). Two's complement packing alone makes a negative field
borrow one from the field above (field j of ``sa * B`` is ``sa*sb_j - borrow_j``, borrow_j the sign of the sum of
the fields below: the upper field needs ``+ P[j*K-1]``). The bias C (a constant on the DSP48's C port, no LUTs)
lifts every field but the last into [0, 2^K), so no field borrows and

    sa*sb_j = P[j*K +: K] - 2^(K-1)   (j < N-1: the field with its top bit inverted, read as signed)
    sa*sb_{N-1} = P[(N-1)*K +: K]     (signed)

``packed_products`` is this arithmetic in Python (tests check it exhaustively against ``sa * sb``). This module is
the single source of the packing plan: the backends receive it as parameters (``dsp_packing``).

Which multipliers are DSP48s: Yosys' ``synth_xilinx`` maps a multiplier whose product has at least
``DSP_MIN_PRODUCT_BITS`` bits (mul2dsp's DSP_Y_MINWIDTH); smaller ones stay LUTs, and the RTL marks them
``use_dsp = "no"`` for Vivado as well, so every tool and the estimate agree on the DSP count.
"""

import dataclasses
import math

from compiler.errors import UnsupportedNodeError
from custom_ops.mac import decoded_width

#: the DSP48E1 multiplier: 25 x 18 bits, signed
DSP_A_BITS, DSP_B_BITS = 25, 18
#: Yosys synth_xilinx maps a multiplier to a DSP48 from this product width on (mul2dsp DSP_Y_MINWIDTH)
DSP_MIN_PRODUCT_BITS = 9


def significand_range(bits, e, signed):
    """(min, max) of the signed significand ``mf_split`` decodes (mf_mac.v): +-(2^(M+1) - 1) for an ExMy code,
    the code's two's complement (or unsigned) range for an integer."""
    if e:
        top = 2 ** (bits - e) - 1  # 2^(M+1) - 1 with M = bits - 1 - e
        return -top, top
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def significand_width(bits, e, signed):
    """Width of ``mf_split``'s signed significand (SW in mf_mac.v)."""
    if e == 0:
        return bits if signed else bits + 1
    return bits - e + 1


def operand_range(params, decoded):
    """(min, max) of a multiplier operand: the significand, or (``decoded``) the value ``mf_decode`` gives, the
    significand shifted by up to 2^E - 2."""
    lo, hi = significand_range(*params)
    if decoded and params[1]:
        return lo * 2 ** (2 ** params[1] - 2), hi * 2 ** (2 ** params[1] - 2)
    return lo, hi


def operand_width(params, decoded):
    """Width of a multiplier operand (SW, or with ``decoded`` mf_decode's DW)."""
    return decoded_width(*params) if decoded else significand_width(*params)


def signed_width(lo, hi):
    """Fewest bits of a two's complement number holding every integer of [lo, hi]."""
    n = 1
    while lo < -(2 ** (n - 1)) or hi > 2 ** (n - 1) - 1:
        n += 1
    return n


def _product_range(a_range, b_range):
    (alo, ahi), (blo, bhi) = a_range, b_range
    corners = [alo * blo, alo * bhi, ahi * blo, ahi * bhi]
    return min(corners), max(corners)


def packed_operand_bits(b_range, n, field):
    """Width of the packed operand ``sum_{j<n} ob_j * 2^(j*field)`` (its exact range) for ob_j in ``b_range``."""
    lo, hi = b_range
    span = sum(2 ** (j * field) for j in range(n))
    return signed_width(min(lo, 0) * span, max(hi, 0) * span)


@dataclasses.dataclass(frozen=True)
class DSPPacking:
    """The products of one SIMD lane's PE output channels, grouped per multiplier (``dsp_packing``).

    ``groups``: sizes of the PE-lane groups (contiguous, in PE order) that share one multiplier per SIMD lane;
    ``field``: K, the bits of one product field; ``packed_bits``: width of the packed weight operand of the largest
    group; ``decode_a``/``decode_b``: whether the multiplier takes the decoded activation / weights (it then does
    their exponent shift) instead of the significands; ``a_bits``/``b_bits``: the operand widths; ``mapped``: per
    group, whether its multiplier is a DSP48 (``DSP_MIN_PRODUCT_BITS``)."""

    groups: tuple
    field: int
    packed_bits: int
    decode_a: int
    decode_b: int
    a_bits: int
    b_bits: int
    mapped: tuple

    @property
    def pack(self):
        """Products per multiplier of the largest group."""
        return max(self.groups)

    @property
    def dsps_per_lane(self):
        """DSP48s per SIMD lane."""
        return sum(self.mapped)

    @property
    def lut_products_per_lane(self):
        """Products per SIMD lane left in LUTs (groups whose multiplier is too small for a DSP48)."""
        return sum(size for size, dsp in zip(self.groups, self.mapped) if not dsp)

    def hdl_params(self):
        """The packing parameters of ``mf_dotp_pe`` (Verilog) / ``mf_dotp_pe`` (HLS template)."""
        return {"GROUPS": len(self.groups), "FIELD": self.field, "PACK_BITS": self.packed_bits,
                "DEC_A": self.decode_a, "DEC_B": self.decode_b}


def fits_dsp(a_params, b_params, decode_a=0, decode_b=0):
    """Whether one product of these operands fits the DSP48E1's 18 x 25 multiplier."""
    return (operand_width(a_params, decode_a) <= DSP_B_BITS and operand_width(b_params, decode_b) <= DSP_A_BITS)


def dsp_packing(a_params, b_params, pe, pack_max=0, decode_a=0, decode_b=0):
    """Plan of the DSP48 datapath for ``pe`` output channels sharing each activation: the fewest multipliers per
    SIMD lane (each packing as many products as fit the 25 x 18 multiplier, at most ``pack_max`` when > 0), the PE
    lanes split into groups of equal size (+-1). ``a_params``/``b_params``: ``operand_params`` of the activation and
    weight formats; ``decode_a``/``decode_b``: multiply the decoded values instead of the significands (integers:
    no difference)."""
    decode_a, decode_b = int(bool(decode_a and a_params[1])), int(bool(decode_b and b_params[1]))
    if not fits_dsp(a_params, b_params, decode_a, decode_b):
        raise UnsupportedNodeError(
            f"a DSP48E1 multiplier takes at most {DSP_B_BITS} (activation) x {DSP_A_BITS} (weight) bits; these "
            f"operands have {operand_width(a_params, decode_a)} and {operand_width(b_params, decode_b)}: use the LUT "
            "datapath (use_dsp=0) or multiply significands")
    wa, wb = operand_width(a_params, decode_a), operand_width(b_params, decode_b)
    b_range = operand_range(b_params, decode_b)
    field = signed_width(*_product_range(operand_range(a_params, decode_a), b_range))
    limit = pe if pack_max <= 0 else min(pe, pack_max)
    n_max = 1
    while n_max < limit and packed_operand_bits(b_range, n_max + 1, field) <= DSP_A_BITS:
        n_max += 1
    n_groups = math.ceil(pe / n_max)
    base, rem = divmod(pe, n_groups)
    groups = tuple(base + (1 if g < rem else 0) for g in range(n_groups))
    packed = packed_operand_bits(b_range, max(groups), field)

    def mapped(size):  # a single product multiplies the two operands themselves (mf_mul_packed, N = 1)
        width = packed if size > 1 else wb
        return int(width >= 2 and wa >= 2 and width + wa >= DSP_MIN_PRODUCT_BITS)

    return DSPPacking(groups, field, packed, decode_a, decode_b, wa, wb, tuple(mapped(s) for s in groups))


def packed_products(sa, sbs, field):
    """The products ``sa * sb_j`` as the packed multiplier delivers them (module docstring): one product ``P`` of
    ``sa`` and the packed operand plus the bias, then the fields read back. Python ints; a test of the arithmetic."""
    n = len(sbs)
    bias = sum(2 ** (j * field + field - 1) for j in range(n - 1))
    p = sa * sum(sb * 2 ** (j * field) for j, sb in enumerate(sbs)) + bias
    mask = 2**field - 1
    out = []
    for j in range(n):
        u = (p >> (j * field)) & mask  # bits [j*K, j*K+K) of P (Python's >> floors: two's complement bits)
        if j < n - 1:
            out.append(u - 2 ** (field - 1))
        else:
            out.append(u - 2**field if u >> (field - 1) else u)
    return out
