"""LUT / FF / BRAM / DSP cost of the pipelined requantizer cores of MinifloatThresholding ("bsearch", "convert"),
fitted to Yosys ``synth_xilinx`` (xc7) of the generated RTL (build_flows/requant_cost_fit.py measures, fits and
prints; the measured table is docs/results/requant_cost.{json,md}).

Every term is per lane (PE lanes, each serving ``cf = C / PE`` channels in turn):

* binary search (M = clog2(N + 1) stages, K = acc bits + 1 threshold bits): LUTs = ``BSEARCH_LUT`` over
  [lane, LUT-ROM bits, block-RAM stage bits, output bits], the LUT-ROM bits of stage s being ``K * max(1, cf 2^s /
  64)`` (a 64 x 1 ROM per LUT6); FFs likewise (``BSEARCH_FF``); block RAM: every block stage is one ``cf 2^s x K``
  memory built from the cheapest mix of RAMB18/RAMB36 aspect ratios (``bram18_count``, Yosys' memory mapping);
* conversion (product width PW = max(A + MB, BB) + 1): LUTs / FFs = coefficients over [lane, PW, the LUT multiplier's
  A * MB partial-product bits (``use_dsp = 0``), the bits of a product split over several DSPs, the per-channel
  parameter ROM bits ``(MB + BB + SB) * cf / 64``, minifloat output bits (leading-one detection, exponent)]; one
  DSP48E1 (25 x 18 signed) per ``ceil(A / 25) * ceil(MB / 18)`` partial product.

The fit's error on the 71 measured designs (docs/results/requant_cost.md; mean / max of |estimate - Yosys| / Yosys,
held-out designs included): LUT: bsearch LUT ROM 2.8 % / 9.4 %, block RAM 5.0 % / 16 %, auto 3.2 % / 9.9 %; convert
with DSP 14 % / 31 %, LUT-only 4.4 % / 12 %; FF: 3.1 % .. 15 % mean, 23 % max. Block RAM exact but where Yosys drops
threshold bits that are constant over a memory (the estimate is then a block high); DSPs exact. ``TOLERANCE`` states
the bound the tests hold.
"""

import functools
import math

#: ram_style "block": search stages of at least this many words go to block RAM (smaller ones stay LUT ROM)
BLOCK_MIN_DEPTH = 64
#: ram_style "auto": search stages of at least this many words go to block RAM
AUTO_BRAM_DEPTH = 512

FEATURES = {
    "bsearch": ("lane", "rom_bits", "compare_bits", "bram_stage_bits", "out_bits"),
    "convert": ("lane", "product_bits", "lut_mult_bits", "split_product_bits", "param_rom_bits",
                "minifloat_out_bits"),
}
#: fitted coefficients (build_flows/requant_cost_fit.py), per model and resource, in FEATURES order
COEFFICIENTS = {
    ("bsearch", "LUT"): (14.615, 1.286, 0.0, 0.738, 9.834),
    ("bsearch", "FF"): (0.0, 0.051, 0.896, 0.0, 26.577),
    ("convert-dsp", "LUT"): (142.568, 0.0, 0.0, 0.986, 1.904, 23.145),
    ("convert-dsp", "FF"): (158.176, 1.041, 0.0, 1.963, 0.272, 1.991),
    ("convert-lut", "LUT"): (0.0, 26.286, 0.238, 0.0, 0.79, 0.0),
    ("convert-lut", "FF"): (160.439, 4.27, 0.0, 0.0, 0.26, 2.341),
}
#: |estimate - Yosys| <= rel * Yosys + slack, per resource (the fit's worst case with a margin)
TOLERANCE = {"LUT": (0.35, 40), "FF": (0.25, 40), "BRAM_18K": (0.1, 1), "DSP": (0.0, 0)}
#: RAMB18-equivalent cost, width and depth of the block RAM aspect ratios (RAMB18, RAMB36)
BRAM_SHAPES = ((1, 36, 512), (1, 18, 1024), (1, 9, 2048), (1, 4, 4096), (1, 2, 8192), (1, 1, 16384),
               (2, 72, 512), (2, 36, 1024), (2, 18, 2048), (2, 9, 4096), (2, 4, 8192), (2, 2, 16384),
               (2, 1, 32768))


def search_stages(n_thresholds):
    """Comparison stages of a binary search over ``n_thresholds`` thresholds: M = clog2(N + 1)."""
    return max(1, math.ceil(math.log2(n_thresholds + 1)))


def bsearch_block_stages(cf, stages, width, ram_style):
    """Bit mask of the search stages whose memory (``cf * 2^s`` words of ``width`` bits) is block RAM."""
    if ram_style == "distributed":
        return 0
    least = BLOCK_MIN_DEPTH if ram_style == "block" else AUTO_BRAM_DEPTH
    return sum(1 << s for s in range(stages) if (cf << s) >= least)


@functools.lru_cache(maxsize=None)
def bram18_count(depth, width):
    """RAMB18 equivalents of one ``depth`` x ``width`` ROM: the cheapest set of block RAM aspect ratios
    (``BRAM_SHAPES``) side by side that covers the width at that depth (deeper than 32K words: stacked)."""
    shapes = [(cost, w) for cost, w, d in BRAM_SHAPES if d >= depth]
    if not shapes:
        return math.ceil(depth / 32768) * bram18_count(32768, width)
    best = [0] + [math.inf] * width
    for x in range(1, width + 1):
        best[x] = min(cost + best[max(0, x - w)] for cost, w in shapes)
    return best[width]


def product_width(acc_bits, mult_bits, bias_bits):
    """Width of ``P = acc * M + B`` (the convert core's PW)."""
    return max(acc_bits + mult_bits, bias_bits) + 1


def convert_dsps(acc_bits, mult_bits):
    """DSP48E1 slices of one lane's ``acc_bits`` x ``mult_bits`` signed product (25 x 18 per slice)."""
    return math.ceil(acc_bits / 25) * math.ceil(mult_bits / 18)


def bsearch_features(cf, pe, n_thresholds, width, out_bits, block_mask):
    rom = bram = 0.0
    stages = search_stages(n_thresholds)
    for s in range(stages):
        if block_mask >> s & 1:
            bram += width
        else:
            rom += width * max(1.0, (cf << s) / 64)
    return [pe, pe * rom, pe * stages * width, pe * bram, pe * out_bits]


def convert_features(cf, pe, acc_bits, mult_bits, bias_bits, shift_bits, out_bits, minifloat, use_dsp):
    pw = product_width(acc_bits, mult_bits, bias_bits)
    split = (convert_dsps(acc_bits, mult_bits) - 1) * pw if use_dsp else 0
    lut_mult = 0 if use_dsp else acc_bits * mult_bits
    rom = (mult_bits + bias_bits + shift_bits) * cf / 64
    return [pe, pe * pw, pe * lut_mult, pe * split, pe * rom, pe * out_bits * int(bool(minifloat))]


def _apply(model, feats):
    return {k: int(round(sum(c * x for c, x in zip(COEFFICIENTS[(model, k)], feats)))) for k in ("LUT", "FF")}


def bsearch_resources(channels, pe, n_thresholds, width, out_bits, block_mask):
    """{LUT, FF, BRAM_18K, DSP} of a binary search over ``n_thresholds`` ``width``-bit thresholds per channel."""
    cf = channels // pe
    res = _apply("bsearch", bsearch_features(cf, pe, n_thresholds, width, out_bits, block_mask))
    bram = sum(pe * bram18_count(cf << s, width) for s in range(search_stages(n_thresholds)) if block_mask >> s & 1)
    return {**res, "BRAM_18K": bram, "DSP": 0}


def convert_resources(channels, pe, acc_bits, mult_bits, bias_bits, shift_bits, out_bits, minifloat, use_dsp):
    """{LUT, FF, BRAM_18K, DSP} of the conversion core (multiplier in DSPs, or in LUTs with ``use_dsp`` false)."""
    feats = convert_features(channels // pe, pe, acc_bits, mult_bits, bias_bits, shift_bits, out_bits, minifloat,
                             use_dsp)
    res = _apply("convert-dsp" if use_dsp else "convert-lut", feats)
    return {**res, "BRAM_18K": 0, "DSP": pe * convert_dsps(acc_bits, mult_bits) if use_dsp else 0}


def config_resources(cfg):
    """The estimate of one measured configuration (a row of docs/results/requant_cost.json: variant, format,
    acc_bits, channels, pe, n_thresholds, out_bits, block_mask, mult_bits, bias_bits, shift_bits, use_dsp)."""
    c, pe, a = int(cfg["channels"]), int(cfg["pe"]), int(cfg["acc_bits"])
    if cfg["variant"].startswith("bsearch"):
        return bsearch_resources(c, pe, int(cfg["n_thresholds"]), a + 1, int(cfg["out_bits"]),
                                 int(cfg["block_mask"]))
    return convert_resources(c, pe, a, int(cfg["mult_bits"]), int(cfg["bias_bits"]), int(cfg["shift_bits"]),
                             int(cfg["out_bits"]), cfg["format"].startswith("fp"), bool(int(cfg["use_dsp"])))


def model_features(model, cfg):
    """The feature vector of one configuration for ``model`` ("bsearch", "convert-dsp", "convert-lut")."""
    c, pe, a = int(cfg["channels"]), int(cfg["pe"]), int(cfg["acc_bits"])
    if model == "bsearch":
        return bsearch_features(c // pe, pe, int(cfg["n_thresholds"]), a + 1, int(cfg["out_bits"]),
                                int(cfg["block_mask"]))
    return convert_features(c // pe, pe, a, int(cfg["mult_bits"]), int(cfg["bias_bits"]), int(cfg["shift_bits"]),
                            int(cfg["out_bits"]), cfg["format"].startswith("fp"), model == "convert-dsp")
