"""MinifloatGlobalAccPool_hls: HLS backend (mf_global_acc_pool in custom_ops/hls/stream_ops.hpp), g++ cppsim."""

import numpy as np

from custom_ops.hls.minifloat_mvau_hls import _ap_const
from custom_ops.hls.pixel_stream_hls import PixelStreamHLS
from custom_ops.minifloat_global_acc_pool import MinifloatGlobalAccPool
from custom_ops.minifloat_mvau import to_int_domain


class MinifloatGlobalAccPool_hls(PixelStreamHLS, MinifloatGlobalAccPool):
    def get_nodeattr_types(self):
        attrs = MinifloatGlobalAccPool.get_nodeattr_types(self)
        attrs.update(PixelStreamHLS.get_nodeattr_types(self))
        return attrs

    def _decode_table(self):
        fi = self.input_format()
        return [int(v) for v in to_int_domain(fi.decode(np.arange(2 ** fi.bits)), fi)]

    def param_lines(self, model):
        table = self._decode_table()
        dw = max(abs(v) for v in table).bit_length() + 2
        return [f"static const ap_int<{dw}> gap_dec[{len(table)}] = {{"
                + ", ".join(_ap_const("ap_int", dw, v) for v in table) + "};"]

    def template_call(self):
        dw = max(abs(v) for v in self._decode_table()).bit_length() + 2
        args = [self.pixels(), self.get_nodeattr("NumChannels"), self.lanes(), self.input_format().bits, dw,
                self.acc_bits()]
        return f"mf_global_acc_pool<{', '.join(map(str, args))}>(in0_V, out0_V, gap_dec)"
