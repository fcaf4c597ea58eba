"""HLS backends of the channel-stream ops (custom_ops/hls/channel_ops.hpp) through HLSStreamBackend:
``MinifloatLUT_hls``, ``MinifloatAdd_hls`` and the threshold constants of the thresholded ops (``threshold_lines``);
g++ cppsim, bit exact with the Python models and the RTL backends."""

from custom_ops.codegen import ap_const, codes_of, const_array, decode_table
from custom_ops.hls.stream_backend import HLSStreamBackend
from custom_ops.minifloat_add import MinifloatAdd
from custom_ops.minifloat_lut import MinifloatLUT
from custom_ops.stream_codecs import AddCodec, CodesCodec


def threshold_lines(op, model, tw, prefix):
    """The constants of a thresholding stage: ``<prefix>_thr`` (one row of ``tw``-bit thresholds per channel),
    ``<prefix>_neg`` (channels compared negated) and ``<prefix>_codes`` (output code of every count)."""
    t = op.thresholds(model)
    ofmt = op.output_format()
    neg = [1 if s < 0 else 0 for s in (op.signs() or [1] * op.get_nodeattr("NumChannels"))]
    rows = ["{" + ", ".join(ap_const("ap_int", tw, v) for v in row) + "}" for row in t]
    return [f"static const ap_int<{tw}> {prefix}_thr[{t.shape[0]}][{t.shape[1]}] = {{" + ", ".join(rows) + "};",
            const_array("ap_uint", 1, f"{prefix}_neg", neg),
            const_array("ap_uint", ofmt.bits, f"{prefix}_codes", [int(c) for c in codes_of(ofmt.values(), ofmt)])]


class ChannelHLS(HLSStreamBackend):
    HEADERS = ("channel_ops.hpp",)

    def words(self):
        return self.get_number_output_values()


class MinifloatLUT_hls(CodesCodec, ChannelHLS, MinifloatLUT):
    def param_lines(self, model):
        return [const_array("ap_uint", self.output_format().bits, "lut_table", [int(c) for c in self.table_codes()])]

    def template_call(self):
        args = [self.get_nodeattr("PE"), self.input_format().bits, self.output_format().bits]
        return f"mf_lut<{', '.join(map(str, args))}>(in0_V, out0_V, lut_table, {self.words()})"


class MinifloatAdd_hls(AddCodec, ChannelHLS, MinifloatAdd):
    def compute_prelude(self):
        if not self.get_nodeattr("const_in1"):
            return []
        # the constant operand is a ROM; an unused stream keeps one signature of mf_add
        return [f"    hls::stream<ap_uint<{self.operand_width(1)}> > unused_in1;"]

    def _widths(self):
        da = max(abs(v) for v in decode_table(self.in_format(0))).bit_length() + 2
        db = max(abs(v) for v in decode_table(self.in_format(1))).bit_length() + 2
        return da, db

    def param_lines(self, model):
        da, db = self._widths()
        lines = [const_array("ap_int", da, "add_deca", decode_table(self.in_format(0))),
                 const_array("ap_int", db, "add_decb", decode_table(self.in_format(1)))]
        if self.get_nodeattr("noActivation"):  # no threshold stage: placeholders of mf_add's signature (unread)
            lines += [f"static const ap_int<2> add_thr[{self.get_nodeattr('NumChannels')}][1] = {{}};",
                      const_array("ap_uint", 1, "add_neg", [0] * self.get_nodeattr("NumChannels")),
                      const_array("ap_uint", self.acc_bits(), "add_codes", [0, 0])]
        else:
            lines += threshold_lines(self, model, self.acc_bits() + 1, "add")
        const = self.const_words(model) if self.get_nodeattr("const_in1") else [0]
        lines.append(const_array("ap_uint", self.operand_width(1), "add_c1", const))
        return lines

    def template_call(self):
        da, db = self._widths()
        const = bool(self.get_nodeattr("const_in1"))
        frame = self.words() if const else 1  # the constant ROM holds one output frame of words
        no_act = bool(self.get_nodeattr("noActivation"))
        args = [self.get_nodeattr("NumChannels"), self.get_nodeattr("PE"), self.in_format(0).bits,
                self.in_format(1).bits, da, db, self.acc_bits(), self.get_output_datatype().bitwidth(),
                1 if no_act else self.n_thresholds(), 2 if no_act else self.acc_bits() + 1,
                "true" if const else "false", frame, "true" if no_act else "false"]
        k0, k1 = (int(k) for k in self.get_nodeattr("coeffs"))
        in1 = "unused_in1" if const else "in1_V"
        return (f"mf_add<{', '.join(map(str, args))}>(in0_V, {in1}, out0_V, add_deca, add_decb, "
                f"{ap_const('ap_int', 64, k0)}, {ap_const('ap_int', 64, k1)}, add_thr, add_neg, add_codes, add_c1, "
                f"{self.words()})")
