"""MinifloatLayerNorm_hls: HLS C++ backend of MinifloatLayerNorm (custom_ops/hls/minifloat_layernorm.hpp), through the
shared HLSStreamBackend (Vitis HLS top + tcl; g++ cppsim against hls4ml's ap_types)."""

import numpy as np

from custom_ops.codegen import codes_of, pack_words, unpack_words
from custom_ops.hls.minifloat_mvau_hls import _ap_const
from custom_ops.hls.stream_backend import HLSStreamBackend
from custom_ops.minifloat_layernorm import MinifloatLayerNorm


class MinifloatLayerNorm_hls(HLSStreamBackend, MinifloatLayerNorm):
    HEADER = "minifloat_layernorm.hpp"

    def get_nodeattr_types(self):
        attrs = MinifloatLayerNorm.get_nodeattr_types(self)
        attrs.update(HLSStreamBackend.get_nodeattr_types(self))
        return attrs

    def _template_args(self):
        w = self.widths()
        return [self.get_nodeattr("NumChannels"), self.get_nodeattr("PE"), self.input_format().bits,
                self.output_format().bits, self.n_thresholds(), w["A"], w["S1"], w["S2"], w["V"], w["N"], w["Q"],
                w["Z"], self.get_nodeattr("R")]

    def template_call(self):
        args = ", ".join(str(a) for a in self._template_args())
        return f"minifloat_layernorm<{args}>(in0_V, out0_V, ln_dec, ln_thr, ln_neg, ln_codes, ln_eps, {self.rows()})"

    def pragmas(self):
        super().pragmas()
        self.code_gen_dict["$PRAGMAS$"].append("#pragma HLS BIND_STORAGE variable=ln_dec type=rom_1p impl=lutram")

    def param_lines(self, model):
        w, fi, fo = self.widths(), self.input_format(), self.output_format()
        ib = fi.bits
        codes = np.arange(2 ** ib)
        if fi.is_minifloat:
            ints = [int(v) for v in np.rint(np.ldexp(fi.decode(codes).astype(np.float64), -fi.lsb_exponent))]
        else:
            ints = [int(c) - (1 << ib) if fi.signed and c >> (ib - 1) else int(c) for c in codes]
        t = self.thresholds(model)
        neg = [1 if s < 0 else 0 for s in (self.signs() or [1] * self.get_nodeattr("NumChannels"))]
        out_codes = [int(c) for c in codes_of(fo.values(), fo)]
        rows = ["{" + ", ".join(_ap_const("ap_int", w["Z"] + 1, v) for v in row) + "}" for row in t]
        return [
            f"static const ap_int<{w['A']}> ln_dec[{len(ints)}] = {{"
            + ", ".join(_ap_const("ap_int", w["A"], v) for v in ints) + "};",
            f"static const ap_int<{w['Z'] + 1}> ln_thr[{t.shape[0]}][{t.shape[1]}] = {{" + ", ".join(rows) + "};",
            f"static const ap_uint<1> ln_neg[{len(neg)}] = {{" + ", ".join(map(str, neg)) + "};",
            f"static const ap_uint<{fo.bits}> ln_codes[{len(out_codes)}] = {{"
            + ", ".join(_ap_const("ap_uint", fo.bits, v) for v in out_codes) + "};",
            f"static const ap_uint<{w['V']}> ln_eps = {_ap_const('ap_uint', w['V'], self.get_nodeattr('epsTerm'))};",
        ]

    def ap_int_max_w(self):
        return max(1024, int(np.ceil((2 * self.get_nodeattr("R") + self.widths()["V"] + 8) / 1024)) * 1024)

    def input_words(self, context):
        fi, pe = self.input_format(), self.get_nodeattr("PE")
        x = np.asarray(context[self.onnx_node.input[0]], dtype=np.float32)
        return [(pack_words(codes_of(x, fi).reshape(-1, pe), fi.bits), self.get_instream_width())]

    def decode_output(self, words):
        fo = self.output_format()
        return fo.decode(unpack_words(words, fo.bits, self.get_nodeattr("PE")).astype(np.int64))

    def execute_node(self, context, graph):
        self.execute_cppsim_or_python(context, graph, lambda ctx, g: MinifloatLayerNorm.execute_node(self, ctx, g))
