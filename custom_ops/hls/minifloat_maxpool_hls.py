"""MinifloatMaxPool_hls: HLS backend (mf_maxpool in custom_ops/hls/stream_ops.hpp), g++ cppsim."""

from custom_ops.hls.pixel_stream_hls import PixelStreamHLS
from custom_ops.minifloat_maxpool import MinifloatMaxPool


class MinifloatMaxPool_hls(PixelStreamHLS, MinifloatMaxPool):
    def template_call(self):
        h, w, kh, kw = self.core_dims()
        args = [h, w, self.get_nodeattr("NumChannels"), self.lanes(), self.input_format().bits, kh, kw,
                self.compare_kind()]
        return f"mf_maxpool<{', '.join(map(str, args))}>(in0_V, out0_V)"
