"""LUT / FF / BRAM / DSP cost of the pipelined requantizer cores, fitted to Yosys ``synth_xilinx`` (xc7).

(constants pending the fit)
"""

import math

#: ram_style "block": search stages of at least this many words go to block RAM (smaller ones stay LUT ROM)
BLOCK_MIN_DEPTH = 64
#: ram_style "auto": search stages of at least this many words go to block RAM
AUTO_BRAM_DEPTH = 512

FEATURES = {
    "bsearch": ("const", "rom_bits_deep", "rom_bits_shallow", "bram_stage_bits", "compare_bits", "out_bits"),
    "convert": ("const", "sum_bits", "shift_bits", "lut_mult_bits", "param_rom_bits", "out_bits"),
}


def search_stages(n_thresholds):
    """Comparison stages of a binary search over ``n_thresholds`` thresholds: M = clog2(N + 1)."""
    return max(1, math.ceil(math.log2(n_thresholds + 1)))


def bsearch_block_stages(cf, stages, width, ram_style):
    """Bit mask of the search stages whose memory (``cf * 2^s`` words of ``width`` bits) is block RAM."""
    if ram_style == "distributed":
        return 0
    least = BLOCK_MIN_DEPTH if ram_style == "block" else AUTO_BRAM_DEPTH
    return sum(1 << s for s in range(stages) if (cf << s) >= least)


def bram18_count(depth, width):
    """RAMB18 blocks of one ``depth`` x ``width`` memory (the 18 Kb block's aspect ratios)."""
    for max_width, max_depth in ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024)):
        if width <= max_width:
            return math.ceil(depth / max_depth)
    if depth > 512:
        return math.ceil(depth / 1024) * math.ceil(width / 18)
    return math.ceil(depth / 512) * math.ceil(width / 36)


def product_width(acc_bits, mult_bits, bias_bits):
    """Width of ``P = acc * M + B`` (the convert core's PW)."""
    return max(acc_bits + mult_bits, bias_bits) + 1


def features(kind, cfg):
    """The feature vector (FEATURES[kind] order) of a configuration: a dict with channels, pe, acc_bits,
    n_thresholds / out_bits, block_mask (bsearch) or mult/bias/shift bits and use_dsp (convert)."""
    c, pe, a = int(cfg["channels"]), int(cfg["pe"]), int(cfg["acc_bits"])
    cf, ob = c // pe, int(cfg["out_bits"])
    if kind == "bsearch":
        m, k, mask = search_stages(int(cfg["n_thresholds"])), a + 1, int(cfg["block_mask"])
        deep = shallow = bram = 0
        for s in range(m):
            depth = cf << s
            if mask >> s & 1:
                bram += pe * k
            elif depth > 64:
                deep += pe * k * depth / 64
            else:
                shallow += pe * k * depth / 64
        return [1.0, deep, shallow, bram, pe * m * k, pe * ob]
    mb, bb, sb = int(cfg["mult_bits"]), int(cfg["bias_bits"]), int(cfg["shift_bits"])
    pw = product_width(a, mb, bb)
    lut_mult = 0 if int(cfg["use_dsp"]) else pe * a * mb
    return [1.0, pe * pw, pe * pw * math.log2(pw), lut_mult, pe * (mb + bb + sb) * max(1.0, cf / 64), pe * ob]


def bsearch_resources(channels, pe, n_thresholds, width, out_bits, block_mask):
    cf = channels // pe
    m = search_stages(n_thresholds)
    lut = ff = bram = 0
    for s in range(m):
        depth = cf << s
        if block_mask >> s & 1:
            bram += pe * bram18_count(depth, width)
        else:
            lut += pe * width * max(1, depth / 64)
        lut += pe * width / 2
        ff += pe * 2 * width
    return {"LUT": int(round(lut)), "FF": int(round(ff)), "BRAM_18K": bram, "DSP": 0}


def convert_resources(channels, pe, acc_bits, mult_bits, bias_bits, shift_bits, fmt, use_dsp):
    pw = product_width(acc_bits, mult_bits, bias_bits)
    dsp = pe * math.ceil(acc_bits / 25) * math.ceil(mult_bits / 18) if use_dsp else 0
    lut = pe * 4 * pw + (0 if use_dsp else pe * acc_bits * mult_bits)
    return {"LUT": int(lut), "FF": int(pe * 6 * pw), "BRAM_18K": 0, "DSP": dsp}
