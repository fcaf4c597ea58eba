"""MinifloatThresholding_rtl: Verilog backend, one core per requantizer style (custom_ops/minifloat_thresholding.py):

* "parallel": ``minifloat_thresholding.v`` (N comparators per lane, ``mf_threshold`` of the MAC library);
* "bsearch": ``minifloat_thresholding_bsearch.v`` (pipelined binary search, one memory per lane and stage);
* "convert": ``minifloat_requant_convert.v`` (multiplier, leading-one detection, rounding, encoding);

the last two with ``mf_requant_lib.v`` (stream shell, ROM, leading-one detection). Thresholds, codes and
conversion parameters are memory files written here.
"""

import numpy as np

from compiler.errors import UnsupportedNodeError
from custom_ops.codegen import codes_of, pack_words, write_hex
from custom_ops.minifloat_thresholding import (
    MinifloatThresholding,
    convert_widths_of,
    search_codes,
    search_memories,
)
from custom_ops.rtl.stream_backend import RTLStreamBackend, verilog_path
from custom_ops.stream_codecs import ThresholdingCodec

CORES = {"parallel": "minifloat_thresholding", "bsearch": "minifloat_thresholding_bsearch",
         "convert": "minifloat_requant_convert"}


def write_threshold_memories(code_dir, thresholds, bits, ofmt):
    """thresholds.hex (one word per channel, ``bits``-bit thresholds, T_0 in the LSBs) and codes.hex (output code of
    every count) for the thresholding cores; returns their Verilog parameters (THRESH_FILE, CODE_FILE)."""
    n = thresholds.shape[1]
    write_hex(code_dir / "thresholds.hex", pack_words(np.asarray(thresholds, dtype=object), bits), n * bits)
    write_hex(code_dir / "codes.hex", [int(v) for v in codes_of(ofmt.values(), ofmt)], ofmt.bits)
    return {"THRESH_FILE": verilog_path(code_dir / "thresholds.hex"), "CODE_FILE": verilog_path(code_dir / "codes.hex")}


def signs_mask(signs, channels):
    """Verilog literal of the per-channel negation mask (bit c set for sign -1)."""
    mask = sum(1 << ch for ch, s in enumerate(signs or [1] * channels) if s < 0)
    return f"{channels}'h{mask:x}"


def write_search_memories(code_dir, thresholds, acc_bits, stages, pe, ofmt):
    """The per-lane, per-stage memories of the bsearch core (``<code_dir>/bsearch_p<lane>_s<stage>.hex``: word
    ``cf * 2^s + b`` holds the threshold ``T[cf * PE + lane][b * 2^(M-s) + 2^(M-s-1) - 1]``) and the 2^M-entry code
    table (``bsearch_codes.hex``); returns their Verilog parameters (THRESH_PREFIX, CODE_FILE)."""
    width = acc_bits + 1
    for lane, lane_stages in enumerate(search_memories(thresholds, acc_bits, stages, pe)):
        for s, words in enumerate(lane_stages):
            write_hex(code_dir / f"bsearch_p{lane:04x}_s{s:02x}.hex", words, width)
    write_hex(code_dir / "bsearch_codes.hex", search_codes(ofmt, stages), ofmt.bits)
    return {"THRESH_PREFIX": verilog_path(code_dir / "bsearch"),
            "CODE_FILE": verilog_path(code_dir / "bsearch_codes.hex")}


def write_convert_memory(code_dir, params, pe, widths):
    """convert.hex: word cf holds the PE lanes' {shift, bias, mult} (lane 0 in the LSBs) at ``widths`` = [mult,
    bias, shift] bits; returns the PARAM_FILE parameter."""
    wm, wb, ws = widths
    fields = [(int(m) & ((1 << wm) - 1)) | ((int(b) & ((1 << wb) - 1)) << wm) | (int(s) << (wm + wb))
              for m, b, s in np.asarray(params, dtype=object)]
    lanes = np.array(fields, dtype=object).reshape(-1, pe)
    write_hex(code_dir / "convert.hex", pack_words(lanes, wm + wb + ws), pe * (wm + wb + ws))
    return {"PARAM_FILE": verilog_path(code_dir / "convert.hex")}


def output_params(ofmt):
    """The convert core's output format parameters: O_EXP (0 for integers) and the clipping limits (a minifloat's
    largest magnitude code, an integer's range)."""
    if ofmt.is_minifloat:
        return {"O_EXP": ofmt.exponent_bits, "O_POS_MAX": int(ofmt.max_code), "O_NEG_MAX": 0}
    return {"O_EXP": 0, "O_POS_MAX": int(ofmt.max_int_value), "O_NEG_MAX": -int(ofmt.min_int)}


class MinifloatThresholding_rtl(ThresholdingCodec, RTLStreamBackend, MinifloatThresholding):
    @property
    def CORE(self):  # noqa: N802 (the backend base's name for the core module)
        return CORES[self.get_nodeattr("requantStyle")]

    @property
    def USES_MAC_LIBRARY(self):  # noqa: N802
        return self.get_nodeattr("requantStyle") == "parallel"

    def support_files(self):
        return [] if self.get_nodeattr("requantStyle") == "parallel" else ["mf_requant_lib.v"]

    def hdl_params(self, model, code_dir):
        c, pe, acc = self.get_nodeattr("NumChannels"), self.get_nodeattr("PE"), self.acc_bits()
        ofmt = self.output_format()
        common = dict(C=c, PE=pe, ACC_BITS=acc, O_BITS=ofmt.bits)
        style = self.style()
        if style == "convert":
            params = self.convert_params(model)
            widths = convert_widths_of(params)
            self.set_nodeattr("convertWidths", widths)
            files = write_convert_memory(code_dir, params, pe, widths)
            return dict(common, MULT_BITS=widths[0], BIAS_BITS=widths[1], SHIFT_BITS=widths[2], **files,
                        RELU=self.get_nodeattr("convertRelu"), **output_params(ofmt),
                        USE_DSP=self.get_nodeattr("use_dsp"))
        t = self.thresholds(model)
        if t.shape != (c, self.n_thresholds()):
            raise UnsupportedNodeError(f"{self.onnx_node.name}: thresholds {t.shape}, expected ({c}, "
                                       f"{self.n_thresholds()})")
        common.update(N_THRES=self.n_thresholds(), SIGNS=signs_mask(self.signs(), c))
        if style == "bsearch":
            files = write_search_memories(code_dir, t, acc, self.search_stages(), pe, ofmt)
            return dict(common, **files, BLOCK_STAGES=self.block_stages())
        return dict(common, **write_threshold_memories(code_dir, t, acc + 1, ofmt))
