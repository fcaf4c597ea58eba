"""MinifloatThresholding_rtl: Verilog backend (custom_ops/rtl/minifloat_thresholding.v + mf_threshold): the
thresholds and the output code table are memory files (``write_threshold_memories``)."""

import numpy as np

from compiler.errors import UnsupportedNodeError
from custom_ops.codegen import codes_of, pack_words, write_hex
from custom_ops.minifloat_thresholding import MinifloatThresholding
from custom_ops.rtl.stream_backend import RTLStreamBackend, verilog_path
from custom_ops.stream_codecs import ThresholdingCodec


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


class MinifloatThresholding_rtl(ThresholdingCodec, RTLStreamBackend, MinifloatThresholding):
    CORE = "minifloat_thresholding"

    def hdl_params(self, model, code_dir):
        c, acc = self.get_nodeattr("NumChannels"), self.acc_bits()
        t = self.thresholds(model)
        if t.shape != (c, self.n_thresholds()):
            raise UnsupportedNodeError(f"{self.onnx_node.name}: thresholds {t.shape}, expected ({c}, "
                                       f"{self.n_thresholds()})")
        ofmt = self.output_format()
        files = write_threshold_memories(code_dir, t, acc + 1, ofmt)
        return dict(C=c, PE=self.get_nodeattr("PE"), ACC_BITS=acc, N_THRES=self.n_thresholds(), O_BITS=ofmt.bits,
                    SIGNS=signs_mask(self.signs(), c), **files)
