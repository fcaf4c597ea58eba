"""MinifloatReorder_hls: HLS backend (mf_reorder in custom_ops/hls/stream_ops.hpp; an identity reorder is a copy),
g++ cppsim."""

import numpy as np

from compiler.numerics import format_from_datatype
from custom_ops.codegen import codes_of, pack_words, unpack_words
from custom_ops.hls.stream_backend import HLSStreamBackend
from custom_ops.minifloat_reorder import MinifloatReorder


class MinifloatReorder_hls(HLSStreamBackend, MinifloatReorder):
    HEADER = "stream_ops.hpp"

    def get_nodeattr_types(self):
        attrs = MinifloatReorder.get_nodeattr_types(self)
        attrs.update(HLSStreamBackend.get_nodeattr_types(self))
        return attrs

    def _addresses(self):
        if self.is_identity():
            return list(range(self.get_number_output_values()))
        return self.read_words()

    def param_lines(self, model):
        addr = self._addresses()
        return [f"static const ap_uint<32> ro_addr[{len(addr)}] = {{" + ", ".join(f"{a}U" for a in addr) + "};"]

    def template_call(self):
        words = self.n_elements() // self.lanes()
        return (f"mf_reorder<{words}, {self.get_number_output_values()}, {self.get_instream_width()}>"
                "(in0_V, out0_V, ro_addr)")

    def _fmt(self):
        return format_from_datatype(self.get_nodeattr("dataType"), self.onnx_node.name)

    def input_words(self, context):
        fmt = self._fmt()
        x = np.asarray(context[self.onnx_node.input[0]])
        codes = codes_of(x.astype(np.float64 if fmt.bits > 8 else np.float32), fmt)
        return [(pack_words(np.asarray(codes).reshape(-1, self.lanes()), fmt.bits), self.get_instream_width())]

    def decode_output(self, words):
        fmt = self._fmt()
        if fmt.bits > 8 and not fmt.is_minifloat:
            return unpack_words(words, fmt.bits, self.lanes(), signed=fmt.signed)
        return fmt.decode(unpack_words(words, fmt.bits, self.lanes()).astype(np.int64))

    def execute_node(self, context, graph):
        self.execute_cppsim_or_python(context, graph, lambda ctx, g: MinifloatReorder.execute_node(self, ctx, g))
