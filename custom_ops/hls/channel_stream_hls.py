"""HLS backends of the channel-stream ops (custom_ops/hls/channel_ops.hpp) through HLSStreamBackend:
``MinifloatThresholding_hls``, ``MinifloatLUT_hls``, ``MinifloatAdd_hls``; g++ cppsim, bit exact with the Python
models and the RTL backends."""

import numpy as np

from custom_ops.codegen import codes_of, pack_words, unpack_words
from custom_ops.hls.minifloat_mvau_hls import _ap_const
from custom_ops.hls.stream_backend import HLSStreamBackend
from custom_ops.minifloat_add import MinifloatAdd
from custom_ops.minifloat_lut import MinifloatLUT
from custom_ops.minifloat_mvau import to_int_domain
from custom_ops.minifloat_thresholding import MinifloatThresholding


def _array(kind, width, name, values):
    values = list(values) or [0]
    return f"static const {kind}<{width}> {name}[{len(values)}] = {{" + ", ".join(
        _ap_const(kind, width, v) for v in values) + "};"


def _threshold_lines(op, model, tw, prefix):
    t = op.thresholds(model)
    ofmt = op.output_format()
    neg = [1 if s < 0 else 0 for s in (op.signs() or [1] * op.get_nodeattr("NumChannels"))]
    rows = ["{" + ", ".join(_ap_const("ap_int", tw, v) for v in row) + "}" for row in t]
    return [f"static const ap_int<{tw}> {prefix}_thr[{t.shape[0]}][{t.shape[1]}] = {{" + ", ".join(rows) + "};",
            _array("ap_uint", 1, f"{prefix}_neg", neg),
            _array("ap_uint", ofmt.bits, f"{prefix}_codes", [int(c) for c in codes_of(ofmt.values(), ofmt)])]


def _decode_table(fmt):
    return [int(v) for v in to_int_domain(fmt.decode(np.arange(2 ** fmt.bits)), fmt)]


class _ChannelHLS(HLSStreamBackend):
    HEADER = "channel_ops.hpp"

    def words(self):
        return self.get_number_output_values()

    def decode_output(self, words):
        fo = self.output_format()
        return fo.decode(unpack_words(words, fo.bits, self.get_nodeattr("PE")).astype(np.int64))

    def _codes_words(self, x, fmt):
        pe = self.get_nodeattr("PE")
        return pack_words(codes_of(np.asarray(x, dtype=np.float32), fmt).reshape(-1, pe), fmt.bits)


class MinifloatThresholding_hls(_ChannelHLS, MinifloatThresholding):
    def get_nodeattr_types(self):
        attrs = MinifloatThresholding.get_nodeattr_types(self)
        attrs.update(HLSStreamBackend.get_nodeattr_types(self))
        return attrs

    def param_lines(self, model):
        return _threshold_lines(self, model, self.acc_bits() + 1, "th")

    def template_call(self):
        args = [self.get_nodeattr("NumChannels"), self.get_nodeattr("PE"), self.acc_bits(),
                self.output_format().bits, self.n_thresholds(), self.acc_bits() + 1]
        return (f"mf_thresholding<{', '.join(map(str, args))}>(in0_V, out0_V, th_thr, th_neg, th_codes, "
                f"{self.words()})")

    def input_words(self, context):
        bits, pe = self.acc_bits(), self.get_nodeattr("PE")
        mask = (1 << bits) - 1
        flat = np.asarray(context[self.onnx_node.input[0]]).reshape(-1, pe)
        words = pack_words(np.array([[int(v) & mask for v in row] for row in flat], dtype=object), bits)
        return [(words, self.get_instream_width())]

    def execute_node(self, context, graph):
        self.execute_cppsim_or_python(context, graph, lambda c, g: MinifloatThresholding.execute_node(self, c, g))


class MinifloatLUT_hls(_ChannelHLS, MinifloatLUT):
    def get_nodeattr_types(self):
        attrs = MinifloatLUT.get_nodeattr_types(self)
        attrs.update(HLSStreamBackend.get_nodeattr_types(self))
        return attrs

    def param_lines(self, model):
        return [_array("ap_uint", self.output_format().bits, "lut_table", [int(c) for c in self.table_codes()])]

    def template_call(self):
        args = [self.get_nodeattr("PE"), self.input_format().bits, self.output_format().bits]
        return f"mf_lut<{', '.join(map(str, args))}>(in0_V, out0_V, lut_table, {self.words()})"

    def input_words(self, context):
        return [(self._codes_words(context[self.onnx_node.input[0]], self.input_format()), self.get_instream_width())]

    def execute_node(self, context, graph):
        self.execute_cppsim_or_python(context, graph, lambda c, g: MinifloatLUT.execute_node(self, c, g))


class MinifloatAdd_hls(_ChannelHLS, MinifloatAdd):
    def get_nodeattr_types(self):
        attrs = MinifloatAdd.get_nodeattr_types(self)
        attrs.update(HLSStreamBackend.get_nodeattr_types(self))
        return attrs

    def stream_inputs(self):
        return 1 if self.get_nodeattr("const_in1") else 2

    def docompute(self):
        super().docompute()
        if self.get_nodeattr("const_in1"):  # the constant operand is a ROM; an unused stream keeps one signature
            width = self.operand_width(1)
            self.code_gen_dict["$DOCOMPUTE$"].insert(0, f"    hls::stream<ap_uint<{width}> > unused_in1;")

    def _widths(self):
        da = max(abs(v) for v in _decode_table(self.in_format(0))).bit_length() + 2
        db = max(abs(v) for v in _decode_table(self.in_format(1))).bit_length() + 2
        return da, db

    def param_lines(self, model):
        da, db = self._widths()
        lines = [_array("ap_int", da, "add_deca", _decode_table(self.in_format(0))),
                 _array("ap_int", db, "add_decb", _decode_table(self.in_format(1)))]
        lines += _threshold_lines(self, model, self.acc_bits() + 1, "add")
        const = self.const_words(model) if self.get_nodeattr("const_in1") else [0]
        lines.append(_array("ap_uint", self.operand_width(1), "add_c1", const))
        self._frame = len(const)
        return lines

    def template_call(self):
        da, db = self._widths()
        const = bool(self.get_nodeattr("const_in1"))
        frame = getattr(self, "_frame", 1)
        args = [self.get_nodeattr("NumChannels"), self.get_nodeattr("PE"), self.in_format(0).bits,
                self.in_format(1).bits, da, db, self.acc_bits(), self.output_format().bits, self.n_thresholds(),
                self.acc_bits() + 1, "true" if const else "false", frame]
        k0, k1 = (int(k) for k in self.get_nodeattr("coeffs"))
        in1 = "unused_in1" if const else "in1_V"
        return (f"mf_add<{', '.join(map(str, args))}>(in0_V, {in1}, out0_V, add_deca, add_decb, "
                f"{_ap_const('ap_int', 64, k0)}, {_ap_const('ap_int', 64, k1)}, add_thr, add_neg, add_codes, add_c1, "
                f"{self.words()})")

    def input_words(self, context):
        node = self.onnx_node
        words = [(self._codes_words(context[node.input[0]], self.in_format(0)), self.get_instream_width(0))]
        if not self.get_nodeattr("const_in1"):
            words.append((self._codes_words(context[node.input[1]], self.in_format(1)), self.get_instream_width(1)))
        return words

    def execute_node(self, context, graph):
        self.execute_cppsim_or_python(context, graph, lambda c, g: MinifloatAdd.execute_node(self, c, g))
