"""MinifloatConvInpGen_hls: HLS backend (mf_conv_inp_gen in custom_ops/hls/stream_ops.hpp), g++ cppsim."""

from custom_ops.hls.pixel_stream_hls import PixelStreamHLS
from custom_ops.minifloat_conv_inp_gen import MinifloatConvInpGen


class MinifloatConvInpGen_hls(PixelStreamHLS, MinifloatConvInpGen):
    def template_call(self):
        (h, w), (kh, kw) = self.get_nodeattr("IFMDim"), self.get_nodeattr("ConvKernelDim")
        (sh, sw), (dh, dw) = self.get_nodeattr("Stride"), self.get_nodeattr("Dilation")
        pt, pl = self.get_nodeattr("Padding")[:2]
        oh, ow = self.output_dims()
        args = [h, w, self.get_nodeattr("NumChannels"), self.lanes(), self.input_format().bits, kh, kw, sh, sw, dh,
                dw, pt, pl, oh, ow, self.pad_code()]
        return f"mf_conv_inp_gen<{', '.join(map(str, args))}>(in0_V, out0_V)"
