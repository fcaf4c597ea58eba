"""MinifloatGlobalAccPool_hls: HLS backend (mf_global_acc_pool in custom_ops/hls/stream_ops.hpp), g++ cppsim."""

from custom_ops.codegen import const_array, decode_table
from custom_ops.hls.pixel_stream_hls import PixelStreamHLS
from custom_ops.minifloat_global_acc_pool import MinifloatGlobalAccPool


class MinifloatGlobalAccPool_hls(PixelStreamHLS, MinifloatGlobalAccPool):
    def _decoded_width(self):
        return max(abs(v) for v in decode_table(self.input_format())).bit_length() + 2

    def param_lines(self, model):
        return [const_array("ap_int", self._decoded_width(), "gap_dec", decode_table(self.input_format()))]

    def template_call(self):
        args = [self.pixels(), self.get_nodeattr("NumChannels"), self.lanes(), self.input_format().bits,
                self._decoded_width(), self.acc_bits()]
        return f"mf_global_acc_pool<{', '.join(map(str, args))}>(in0_V, out0_V, gap_dec)"
