"""MinifloatThresholding_hls: HLS C++ backend of MinifloatThresholding through HLSStreamBackend, one template per
requantizer style: ``mf_thresholding`` (channel_ops.hpp; "parallel"), ``mf_thresholding_bsearch`` and
``mf_requant_convert`` (minifloat_thresholding.hpp). The thresholds, the binary search's stage tables (with the
node's generated search, one step per stage) and the conversion parameters are constants; g++ cppsim, bit exact with
the Python model and the RTL backend."""

from custom_ops.codegen import ap_const, const_array
from custom_ops.hls.channel_stream_hls import ChannelHLS, threshold_lines
from custom_ops.minifloat_thresholding import (
    MinifloatThresholding,
    convert_widths_of,
    search_codes,
    search_memories,
)
from custom_ops.stream_codecs import ThresholdingCodec


class MinifloatThresholding_hls(ThresholdingCodec, ChannelHLS, MinifloatThresholding):
    HEADERS = ("channel_ops.hpp", "minifloat_thresholding.hpp")

    def param_lines(self, model):
        style = self.style()
        if style == "bsearch":
            return self.search_lines(model)
        if style == "convert":
            return self.convert_lines(model)
        return threshold_lines(self, model, self.acc_bits() + 1, "th")

    def search_lines(self, model):
        """The stage tables ``bs_s<s>[PE][CF << s]``, the channel negations, the code of every count and the
        node's search (``bs_search::count``)."""
        m, k, pe = self.search_stages(), self.acc_bits() + 1, self.get_nodeattr("PE")
        tables = search_memories(self.thresholds(model), self.acc_bits(), m, pe)
        lines = []
        for s in range(m):
            rows = ["{" + ", ".join(ap_const("ap_int", k, v) for v in tables[lane][s]) + "}" for lane in range(pe)]
            lines.append(f"static const ap_int<{k}> bs_s{s}[{pe}][{len(tables[0][s])}] = {{" + ", ".join(rows) + "};")
        neg = [1 if s < 0 else 0 for s in (self.signs() or [1] * self.get_nodeattr("NumChannels"))]
        lines += [const_array("ap_uint", 1, "bs_neg", neg),
                  const_array("ap_uint", self.output_format().bits, "bs_codes", search_codes(self.output_format(), m)),
                  "struct bs_search {",
                  f"    static ap_uint<{m}> count(ap_int<{k}> u, unsigned p, unsigned cf) {{",
                  "#pragma HLS INLINE",
                  f"        ap_uint<{m}> b = 0;"]
        lines += [f"        b = mf_bsearch_step<{m}, {k}>(u, b, bs_s{s}[p][cf * {1 << s} + unsigned(b)]);"
                  for s in range(m)]
        lines += ["        return b;", "    }", "};"]
        return lines

    def convert_lines(self, model):
        params = self.convert_params(model)
        wm, wb, ws = convert_widths_of(params)
        self.set_nodeattr("convertWidths", [wm, wb, ws])
        return [const_array("ap_int", wm, "cv_mult", params[:, 0]), const_array("ap_int", wb, "cv_bias", params[:, 1]),
                const_array("ap_uint", ws, "cv_shift", params[:, 2])]

    def extra_pragmas(self):
        style, pe = self.get_nodeattr("requantStyle"), self.get_nodeattr("PE")
        if style == "bsearch":
            lines = [f"#pragma HLS ARRAY_PARTITION variable=bs_neg cyclic factor={pe}"]
            for s in range(self.search_stages()):
                impl = "bram" if self.block_stages() >> s & 1 else "lutram"
                lines += [f"#pragma HLS ARRAY_PARTITION variable=bs_s{s} dim=1 complete",
                          f"#pragma HLS BIND_STORAGE variable=bs_s{s} type=rom_1p impl={impl}"]
            return lines
        if style == "convert":
            return [line for name in ("cv_mult", "cv_bias", "cv_shift")
                    for line in (f"#pragma HLS ARRAY_PARTITION variable={name} cyclic factor={pe}",
                                 f"#pragma HLS BIND_STORAGE variable={name} type=rom_1p impl=lutram")]
        return []

    def template_call(self):
        c, pe, aw = self.get_nodeattr("NumChannels"), self.get_nodeattr("PE"), self.acc_bits()
        ofmt = self.output_format()
        style = self.style()
        if style == "bsearch":
            args = [c, pe, aw, ofmt.bits, self.search_stages(), "bs_search"]
            return (f"mf_thresholding_bsearch<{', '.join(map(str, args))}>(in0_V, out0_V, bs_neg, bs_codes, "
                    f"{self.words()})")
        if style == "convert":
            wm, wb, ws = self.convert_widths()
            if ofmt.is_minifloat:
                oe, posmax, negmax = ofmt.exponent_bits, int(ofmt.max_code), 0
            else:
                oe, posmax, negmax = 0, int(ofmt.max_int_value), -int(ofmt.min_int)
            args = [c, pe, aw, ofmt.bits, wm, wb, ws, oe, "true" if self.get_nodeattr("convertRelu") else "false",
                    "true" if self.get_nodeattr("use_dsp") else "false", f"{posmax}LL", f"{negmax}LL"]
            return (f"mf_requant_convert<{', '.join(map(str, args))}>(in0_V, out0_V, cv_mult, cv_bias, cv_shift, "
                    f"{self.words()})")
        args = [c, pe, aw, ofmt.bits, self.n_thresholds(), aw + 1]
        return f"mf_thresholding<{', '.join(map(str, args))}>(in0_V, out0_V, th_thr, th_neg, th_codes, {self.words()})"
