"""MinifloatLayerNorm_hls: HLS C++ backend of MinifloatLayerNorm (custom_ops/hls/minifloat_layernorm.hpp), through
HLSStreamBackend: the input decoder ROM, the thresholds of the output requantizer and eps are constants."""

import numpy as np

from custom_ops.codegen import ap_const, const_array, decode_table
from custom_ops.hls.channel_stream_hls import threshold_lines
from custom_ops.hls.stream_backend import HLSStreamBackend
from custom_ops.minifloat_layernorm import MinifloatLayerNorm
from custom_ops.stream_codecs import CodesCodec


class MinifloatLayerNorm_hls(CodesCodec, HLSStreamBackend, MinifloatLayerNorm):
    HEADERS = ("minifloat_layernorm.hpp",)

    def template_call(self):
        w = self.widths()
        args = [self.get_nodeattr("NumChannels"), self.get_nodeattr("PE"), self.input_format().bits,
                self.output_format().bits, self.n_thresholds(), w["A"], w["S1"], w["S2"], w["V"], w["N"], w["Q"],
                w["Z"], self.get_nodeattr("R")]
        return (f"minifloat_layernorm<{', '.join(map(str, args))}>(in0_V, out0_V, ln_dec, ln_thr, ln_neg, ln_codes, "
                f"ln_eps, {self.rows()})")

    def extra_pragmas(self):
        return ["#pragma HLS BIND_STORAGE variable=ln_dec type=rom_1p impl=lutram"]

    def param_lines(self, model):
        w = self.widths()
        return [const_array("ap_int", w["A"], "ln_dec", decode_table(self.input_format())),
                *threshold_lines(self, model, w["Z"] + 1, "ln"),
                f"static const ap_uint<{w['V']}> ln_eps = {ap_const('ap_uint', w['V'], self.get_nodeattr('epsTerm'))};"]

    def get_ap_int_max_w(self):
        return max(1024, int(np.ceil((2 * self.get_nodeattr("R") + self.widths()["V"] + 8) / 1024)) * 1024)
