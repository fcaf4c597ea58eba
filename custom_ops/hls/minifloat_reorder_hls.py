"""MinifloatReorder_hls: HLS backend (mf_reorder in custom_ops/hls/stream_ops.hpp with the address and constant-word
ROMs; an identity reorder is a copy), g++ cppsim."""

from custom_ops.codegen import const_array
from custom_ops.hls.stream_backend import HLSStreamBackend
from custom_ops.minifloat_reorder import MinifloatReorder
from custom_ops.stream_codecs import ReorderCodec


class MinifloatReorder_hls(ReorderCodec, HLSStreamBackend, MinifloatReorder):
    HEADERS = ("stream_ops.hpp",)

    def param_lines(self, model):
        addr = list(range(self.get_number_output_values())) if self.is_identity() else self.read_words()
        consts = [0] if self.is_identity() else self.const_words()[0]
        return [f"static const ap_uint<32> ro_addr[{len(addr)}] = {{" + ", ".join(f"{a}U" for a in addr) + "};",
                const_array("ap_uint", self.get_instream_width(), "ro_const", consts)]

    def template_call(self):
        words = self.n_elements() // self.lanes()
        consts = 1 if self.is_identity() else len(self.const_words()[0])
        return (f"mf_reorder<{words}, {self.get_number_output_values()}, {self.get_instream_width()}, {consts}>"
                "(in0_V, out0_V, ro_addr, ro_const)")
