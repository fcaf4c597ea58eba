"""LUT / FF cost of minifinn's threshold requantization stage, measured with Yosys ``synth_xilinx`` (xc7).

Every thresholded core (MinifloatMVAU, MinifloatThresholding, MinifloatAdd, MinifloatLayerNorm) ends in the same
stage per lane: the lane's threshold rows are a ROM read at the current channel (``$readmemh`` contents), then
``count = #{i : u >= T[ch][i]}`` with N parallel comparators of W bits and ``code = CODE[count]``. Its cost depends
on how many *distinct* rows one lane reads:

* ``rows == 1`` (every channel has the same thresholds: per-tensor requantization, e.g. residual adds, attention
  scores, per-tensor thresholding): synthesis folds the ROM into constants and the comparators compare against
  constants, about 12.5 LUTs per threshold whatever W (comparisons with sorted constants share logic);
* ``rows = D > 1`` distinct rows per lane (per-channel requantization: per-channel weight scales or biases,
  LayerNorm's gamma/beta): a D-deep ROM of N x W bits (folded into the comparator LUTs while D <= 8, about 1 LUT
  per bit while D <= 32, a LUT6 per bit and the registered read up to 64, about 1 LUT per bit more per further 64
  rows), plus comparators against variable thresholds (about 1 LUT per bit).

The constants are fitted to Yosys runs of ``custom_ops/rtl/minifloat_thresholding.v`` with the real thresholds of
the ViT-tiny's first MVAU (E3M2 output, N = 62, W = 25), its subsampled rows (E2M1, N = 14) and the ViT's
per-tensor thresholding node (W = 16), recorded in
``MEASURED`` (rows per lane, N, W, lanes, measured LUTs, measured FFs); ``tests/test_threshold_cost.py`` checks the
model against them and, with Yosys present, against a fresh synthesis.
"""

import math

#: (distinct rows per lane, N thresholds, stored threshold width W, lanes, Yosys LUTs, Yosys FFs) of the
#: minifloat_thresholding core (xc7, -nodsp, lut_total = logic + LUTRAM + SRL)
MEASURED = (
    (1, 62, 25, 1, 767, 7),
    (1, 14, 25, 1, 181, 5),
    (1, 62, 25, 2, 1530, 13),
    (1, 62, 16, 1, 734, 7),
    (8, 62, 25, 2, 3280, 267),
    (16, 62, 25, 1, 3146, 1095),
    (32, 62, 25, 2, 6941, 1163),
    (64, 62, 25, 1, 5543, 1177),
    (64, 14, 25, 1, 1521, 272),
    (64, 62, 17, 1, 3777, 681),
    (128, 62, 25, 1, 7060, 1178),
)

#: LUTs per threshold compared against constants (rows == 1); per threshold bit compared against a ROM word
CONST_COMPARE_LUT_PER_THRESHOLD = 12.5
VAR_COMPARE_LUT_PER_BIT = 1.0
#: LUTs per threshold bit of the row ROM: tiny (<= 8 rows: folded into the comparator LUTs), shallow (<= 32 rows,
#: LUT5/LUT6 functions), up to 64 rows (LUT6 and the registered read), and per further 64-row block (its LUT6 and the
#: wider multiplexer)
TINY_ROM_ROWS = 8
TINY_ROM_LUT_PER_BIT = 0.05
SHALLOW_ROM_LUT_PER_BIT = 1.1
DEEP_ROM_LUT_PER_BIT = 2.6
EXTRA_BLOCK_LUT_PER_BIT = 1.0
#: FFs per threshold bit of a multi-row ROM's registered read, as Yosys maps it (measured: about one row's worth
#: whatever the lane count)
ROM_FF_PER_BIT = 0.72


def rom_lut_per_bit(rows):
    """LUTs per stored threshold bit of one lane's ROM of ``rows`` distinct rows (0 for a single, constant row)."""
    if rows <= 1:
        return 0.0
    if rows <= TINY_ROM_ROWS:
        return TINY_ROM_LUT_PER_BIT
    if rows <= 32:
        return SHALLOW_ROM_LUT_PER_BIT
    return DEEP_ROM_LUT_PER_BIT + EXTRA_BLOCK_LUT_PER_BIT * (math.ceil(rows / 64) - 1)


def threshold_stage_luts(rows_per_lane, n_thresholds, width, lanes=1):
    """Estimated LUTs of ``lanes`` threshold stages, each reading ``rows_per_lane`` distinct rows of
    ``n_thresholds`` thresholds of ``width`` bits (see the module docstring for the model)."""
    if n_thresholds <= 0:
        return 0
    if rows_per_lane <= 1:
        return int(round(lanes * n_thresholds * CONST_COMPARE_LUT_PER_THRESHOLD))
    bits = n_thresholds * width
    return int(round(lanes * bits * (VAR_COMPARE_LUT_PER_BIT + rom_lut_per_bit(rows_per_lane))))


def threshold_stage_ffs(rows_per_lane, n_thresholds, width):
    """Estimated FFs of the stages' registered ROM read (none for a constant row or a tiny ROM)."""
    if n_thresholds <= 0 or rows_per_lane <= TINY_ROM_ROWS:
        return 0
    return int(round(ROM_FF_PER_BIT * n_thresholds * width))


def rows_per_lane(channels, pe, shared):
    """Distinct threshold rows one of ``pe`` lanes reads: 1 when every channel shares one row, else C / PE."""
    return 1 if shared else max(1, channels // max(1, pe))
