"""MinifloatMaxPool_rtl: Verilog backend (custom_ops/rtl/minifloat_maxpool.v)."""

from custom_ops.minifloat_maxpool import MinifloatMaxPool
from custom_ops.rtl.pixel_stream_rtl import PixelStreamRTL


class MinifloatMaxPool_rtl(PixelStreamRTL, MinifloatMaxPool):
    CORE = "minifloat_maxpool"
    USES_MAC_LIBRARY = False

    def hdl_params(self, model, code_dir):
        h, w, kh, kw = self.core_dims()
        self.folds()
        return dict(H=h, W=w, C=self.get_nodeattr("NumChannels"), PE=self.lanes(), BITS=self.input_format().bits,
                    KH=kh, KW=kw, KIND=self.compare_kind())
