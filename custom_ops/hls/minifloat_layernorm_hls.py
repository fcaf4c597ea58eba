"""MinifloatLayerNorm_hls: HLS C++ backend of MinifloatLayerNorm (custom_ops/hls/minifloat_layernorm.hpp), through
HLSStreamBackend: the input decoder ROM, the thresholds of the output requantizer (none with ``noActivation = 1``,
which outputs z) and eps are constants. The rows are not overlapped (``get_exp_cycles``)."""

import numpy as np

from custom_ops.capabilities import divisors
from custom_ops.codegen import ap_const, const_array, decode_table
from custom_ops.hls.channel_stream_hls import threshold_lines
from custom_ops.hls.stream_backend import HLSStreamBackend
from custom_ops.minifloat_layernorm import MinifloatLayerNorm
from custom_ops.stream_codecs import CodesCodec


class MinifloatLayerNorm_hls(CodesCodec, HLSStreamBackend, MinifloatLayerNorm):
    HEADERS = ("minifloat_layernorm.hpp",)

    def get_exp_cycles(self):
        """Per row, one after the other: D / PE words in, a sequential division (one quotient bit per cycle, up to
        2R + V + 2) and square root (Q steps), D / PE words out. ``rsqrtUnits`` does not apply."""
        w = self.widths()
        return self.rows() * (2 * self.folds() + 2 * self.get_nodeattr("R") + w["V"] + w["Q"] + 4)

    def folding_space(self):
        """PE over the channels (the HLS core has no reciprocal-square-root units to choose)."""
        return [{"PE": pe} for pe in divisors(self.get_nodeattr("NumChannels"))]

    def template_call(self):
        w = self.widths()
        d, pe, ib, ob = (self.get_nodeattr("NumChannels"), self.get_nodeattr("PE"), self.input_format().bits,
                         self.output_lane_bits())
        tail = [w["A"], w["S1"], w["S2"], w["V"], w["N"], w["Q"], w["Z"], self.get_nodeattr("R")]
        if self.accumulator_output():
            args = ", ".join(map(str, [d, pe, ib, ob] + tail))
            return f"minifloat_layernorm_z<{args}>(in0_V, out0_V, ln_dec, ln_eps, {self.rows()})"
        args = ", ".join(map(str, [d, pe, ib, ob, self.n_thresholds()] + tail))
        return (f"minifloat_layernorm<{args}>(in0_V, out0_V, ln_dec, ln_thr, ln_neg, ln_codes, ln_eps, "
                f"{self.rows()})")

    def extra_pragmas(self):
        return ["#pragma HLS BIND_STORAGE variable=ln_dec type=rom_1p impl=lutram"]

    def param_lines(self, model):
        w = self.widths()
        thr = [] if self.accumulator_output() else threshold_lines(self, model, w["Z"] + 1, "ln")
        return [const_array("ap_int", w["A"], "ln_dec", decode_table(self.input_format())), *thr,
                f"static const ap_uint<{w['V']}> ln_eps = {ap_const('ap_uint', w['V'], self.get_nodeattr('epsTerm'))};"]

    def get_ap_int_max_w(self):
        return max(1024, int(np.ceil((2 * self.get_nodeattr("R") + self.widths()["V"] + 8) / 1024)) * 1024)
