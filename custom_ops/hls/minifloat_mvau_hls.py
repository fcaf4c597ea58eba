"""MinifloatMVAU_hls: HLS C++ backend of MinifloatMVAU (custom_ops/hls/minifloat_mvau.hpp + the MAC library), through
HLSStreamBackend.

Embedded weights: ``minifloat_mvau`` reads a ROM of ``PE * SIMD`` weight codes per word. ``dynamic_input = 1``: the
top function has a second stream ``in1_V`` (FINN's MVAU mem_mode "dynamic" word order, see ``MinifloatMVAU``) and
``minifloat_mvau_dyn`` buffers one matrix per group in ``wbuf``; there are no weight constants. ``mem_mode =
"external"``: ``minifloat_mvau_ext`` reads each step's ``PE * SIMD`` weight codes from ``in1_V`` (the ROM word, from
external memory); no weight constants, no buffer.
"""

import numpy as np

from custom_ops.codegen import ap_const, codes_of
from custom_ops.hls.stream_backend import HLSStreamBackend
from custom_ops.mac import operand_params
from custom_ops.minifloat_mvau import MinifloatMVAU
from custom_ops.stream_codecs import MVAUCodec


class MinifloatMVAU_hls(MVAUCodec, HLSStreamBackend, MinifloatMVAU):
    HEADERS = ("mf_mac.hpp", "minifloat_mvau.hpp")

    def _template_args(self):
        fa, fw = self.input_format(), self.weight_format()
        (ab, ae, asg), (wb, we, wsg) = operand_params(fa), operand_params(fw)
        nt = max(self.n_thresholds(), 1)
        return [self.get_nodeattr("MW"), self.get_nodeattr("MH"), self.get_nodeattr("PE"), self.get_nodeattr("SIMD"),
                ab, ae, "true" if asg else "false", wb, we, "true" if wsg else "false", self.acc_bits(),
                "true" if self.get_nodeattr("noActivation") else "false", nt, int(nt).bit_length() + 1,
                self.get_output_datatype().bitwidth(), "true" if self.get_nodeattr("use_dsp") else "false",
                *self.mac_plan_params().values()]

    def extra_pragmas(self):
        if self.weight_source() != "embedded":
            return []
        impl = {"distributed": "lutram", "ultra": "uram"}.get(self.get_nodeattr("ram_style"), "auto")
        return [f"#pragma HLS BIND_STORAGE variable=weights type=rom_2p impl={impl}"]

    def compute_prelude(self):
        if not self.get_nodeattr("dynamic_input"):
            return []
        nf, sf = self.folds()
        width = self.get_nodeattr("PE") * self.weight_format().bits
        lines = [f"    static ap_uint<{width}> wbuf[{self.get_nodeattr('SIMD')}][{nf * sf}];  // one matrix",
                 "#pragma HLS ARRAY_PARTITION variable=wbuf complete dim=1"]
        impl = {"block": "bram", "distributed": "lutram", "ultra": "uram"}.get(self.get_nodeattr("ram_style"))
        if impl:
            lines.append(f"#pragma HLS BIND_STORAGE variable=wbuf type=ram_s2p impl={impl}")
        return lines

    def template_call(self):
        args = ", ".join(str(a) for a in self._template_args())
        if self.get_nodeattr("dynamic_input"):
            groups, vecs = self.dynamic_groups()
            return f"minifloat_mvau_dyn<{args}>(in0_V, in1_V, out0_V, wbuf, thresholds, codes, {groups}, {vecs})"
        reps = int(np.prod(self.get_nodeattr("numInputVectors")))
        if self.weight_source() == "external":
            return f"minifloat_mvau_ext<{args}>(in0_V, in1_V, out0_V, thresholds, codes, {reps})"
        return f"minifloat_mvau<{args}>(in0_V, out0_V, weights, thresholds, codes, {reps})"

    def param_lines(self, model):
        """Weights (ROM words, unless they arrive on in1_V), thresholds and the count -> code table."""
        nf, sf = self.folds()
        pe, simd = self.get_nodeattr("PE"), self.get_nodeattr("SIMD")
        lines = []
        if self.weight_source() == "embedded":
            ww = pe * simd * self.weight_format().bits
            lines = [f"static const ap_uint<{ww}> weights[{nf * sf}] = {{"]
            lines += [f"    {ap_const('ap_uint', ww, w)}," for w in self.weight_rom_words(model)] + ["};"]
        acc, nt = self.acc_bits(), max(self.n_thresholds(), 1)
        ob = self.get_output_datatype().bitwidth()
        if self.n_thresholds():
            rows = [", ".join(ap_const("ap_int", acc, t) for t in row) for row in self.threshold_ints(model)]
            ofmt = self.output_format()
            table = [int(c) for c in codes_of(ofmt.values(), ofmt)]
        else:
            rows = [f"ap_int<{acc}>(0)" for _ in range(self.get_nodeattr("MH"))]
            table = [0, 0]
        lines += [f"static const ap_int<{acc}> thresholds[{self.get_nodeattr('MH')}][{nt}] = {{"]
        lines += [f"    {{{r}}}," for r in rows] + ["};"]
        lines += [f"static const ap_uint<{ob}> codes[{nt + 1}] = {{{', '.join(str(c) for c in table)}}};"]
        return lines

    def get_ap_int_max_w(self):
        widths = [self.get_instream_width(), self.get_outstream_width(),
                  self.get_nodeattr("PE") * self.get_nodeattr("SIMD") * self.weight_format().bits, self.acc_bits()]
        return max(1024, int(np.ceil(max(widths) / 1024)) * 1024)
