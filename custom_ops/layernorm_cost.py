"""LUT / FF cost of the MinifloatLayerNorm RTL core (custom_ops/rtl/minifloat_layernorm.v) without its threshold
stages (those are ``custom_ops/threshold_cost.py``'s), by part:

* A, per lane: the decoder, the squarer a*a and its share of the S1 / S2 adder trees; the two accumulators;
* H (once): S1^2 (an S1W x S1W multiplier), D*S2 - S1^2 + eps, the leading-one search and the first remainder;
* per reciprocal-square-root unit: two V'-wide compare-and-subtract steps of the division, the square-root step,
  the registers and the load multiplexers;
* C: the K-way multiplexer of the units' results (S1, r, e) and per lane the decoder, n = D*a - S1, the n x r
  multiplier (NW x (R+1) bits, in LUTs), the arithmetic shift by e and the output register;
* the row buffer: ``NB * D / PE`` words of ``PE * BITS`` bits in LUTRAM (RAM64M: 64 x 3 bits per 4 LUTs, RAM32M:
  32 x 6 bits), with a multiplexer per further 64 words.

``shape`` is ``MinifloatLayerNorm.cost_shape()``: the widths of ``layernorm_widths`` (S1, S2, V, N, Q, Z) and D,
PE, K, NB, R, BITS, OB (output bits per lane), NO_ACT. With DSP inference (the board flow) the S1^2 and the lanes'
normalizing products are DSP48s (``layernorm_dsps``, ``layernorm_luts_with_dsps``, fitted to ``MEASURED_DSP``); the
LUT-only figures are ``layernorm_luts``. The coefficients are a least-squares fit to Yosys
``synth_xilinx`` (xc7, -nodsp, LUTs = logic + LUTRAM) runs of the core in its z-output mode for the flagship's
LayerNorm (E3M2 input, D = 64, R = 16), recorded in ``MEASURED`` (within 7 % of every point);
tests/test_layernorm.py checks the model against them.
"""

import math

#: (PE, K, NB, Yosys LUTs, Yosys FFs) of the core, E3M2 input, D = 64, R = 16, noActivation (22-bit z lanes)
MEASURED = (
    (1, 1, 3, 1449, 478),
    (2, 1, 3, 1915, 495),
    (1, 4, 3, 2446, 965),
    (4, 2, 4, 3123, 698),
    (8, 3, 5, 5753, 947),
    (16, 2, 4, 8602, 952),
    (32, 1, 2, 17164, 1132),
)
#: (PE, K, NB, Yosys LUTs, Yosys DSP48s) of the same core synthesized with DSP inference (the board flow's
#: synthesis, ``step_synth_check``'s default): S1^2 and every lane's (D*a - S1) * r product go to DSP48s
MEASURED_DSP = (
    (1, 1, 3, 809, 2),
    (2, 1, 3, 1148, 3),
    (4, 2, 4, 2196, 5),
    (8, 3, 5, 4180, 9),
)
#: LUTs the DSP48s take over, per bit^2 of the S1 x S1 product and per bit^2 of a lane's N x (R + 1) product,
#: fitted to ``MEASURED_DSP`` minus ``layernorm_luts`` (within 9 % of every run)
DSP_SAVED_LUT_PER_S1_BIT2 = 1.49
DSP_SAVED_LUT_PER_LANE_BIT2 = 0.578
#: LUTs per unit of each part's size measure (see the module docstring), fitted to ``MEASURED``
LUT = {"lane_in": 0.94, "acc": 1.57, "h": 1.57, "unit": 1.59, "mux": 1.0, "lane_out": 0.94, "ram": 1.0}
#: FFs: a unit's registers times ``FF_UNIT`` (its control and load registers), fixed control
FF_UNIT = 1.27
FF_CONTROL = 30


def _bits(n):
    return max(1, math.ceil(math.log2(n))) if n > 1 else 1


def lutram_luts(depth, width):
    """LUTs of a depth x width simple-dual-port distributed RAM as Yosys maps it (RAM32M / RAM64M, a read
    multiplexer per further 64 words)."""
    if depth <= 1:
        return 0
    if depth <= 32:
        return 4 * math.ceil(width / 6)
    blocks = math.ceil(depth / 64)
    return 4 * blocks * math.ceil(width / 3) + (blocks - 1) * width


def parts(shape):
    """The size measure of every part (LUT-equivalents before the fitted coefficients)."""
    s = shape
    dw = s["A"]
    ew = _bits(s["V"] + 1)
    rw = s["R"] + 1
    pw = s["N"] + rw + 1
    lane_in = dw * dw / 2 + s["S1"] + s["S2"] + 2 * dw
    h = s["S1"] * s["S1"] / 2 + 3 * s["V"] + 2 * s["V"]
    unit = 2 * 2 * (s["V"] + 1) + 2 * (s["R"] + 4) + s["V"]
    mux = (s["S1"] + rw + ew) * math.ceil((s["K"] - 1) / 3)
    lane_out = 2 * dw + s["N"] + s["N"] * rw + pw * math.ceil(_bits(ew) / 2) + s["OB"]
    ram = lutram_luts(s["NB"] * s["D"] // s["PE"], s["PE"] * s["BITS"])
    return {"lane_in": s["PE"] * lane_in, "acc": s["S1"] + s["S2"], "h": h, "unit": s["K"] * unit, "mux": mux,
            "lane_out": s["PE"] * lane_out, "ram": ram}


def layernorm_luts(shape):
    """Estimated LUTs of the core without its threshold stages."""
    return sum(LUT[k] * v for k, v in parts(shape).items())


def layernorm_dsps(shape):
    """DSP48s of the core under DSP inference: the S1 x S1 multiplier and one per lane (``MEASURED_DSP``)."""
    return 1 + shape["PE"]


def layernorm_luts_with_dsps(shape):
    """Estimated LUTs of the core without its threshold stages when its multipliers are DSP48s."""
    s = shape
    saved = DSP_SAVED_LUT_PER_S1_BIT2 * s["S1"] ** 2 + DSP_SAVED_LUT_PER_LANE_BIT2 * s["PE"] * s["N"] * (s["R"] + 1)
    return max(0.0, layernorm_luts(shape) - saved)


def layernorm_ffs(shape):
    """Estimated FFs: the accumulators, H's registers, every unit's registers, C's row registers and the output
    register."""
    s = shape
    ew = _bits(s["V"] + 1)
    rw = s["R"] + 1
    unit = 2 * s["V"] + ew + s["S1"] + _bits(s["R"] + 2) + 3 + (s["R"] + 2) + rw + 2
    h = 3 * s["S1"] + s["S2"] + 3 * s["V"] + ew + 3
    c = s["S1"] + rw + ew + _bits(s["D"] // s["PE"] + 1) + 2
    return s["S1"] + s["S2"] + h + FF_UNIT * s["K"] * unit + c + s["PE"] * s["OB"] + FF_CONTROL
