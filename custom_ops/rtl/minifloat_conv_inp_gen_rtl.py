"""MinifloatConvInpGen_rtl: Verilog backend (custom_ops/rtl/minifloat_conv_inp_gen.v)."""

from custom_ops.minifloat_conv_inp_gen import MinifloatConvInpGen
from custom_ops.rtl.pixel_stream_rtl import PixelStreamRTL


class MinifloatConvInpGen_rtl(PixelStreamRTL, MinifloatConvInpGen):
    CORE = "minifloat_conv_inp_gen"
    USES_MAC_LIBRARY = False

    def hdl_params(self, model, code_dir):
        (h, w), (kh, kw) = self.get_nodeattr("IFMDim"), self.get_nodeattr("ConvKernelDim")
        (sh, sw), (dh, dw) = self.get_nodeattr("Stride"), self.get_nodeattr("Dilation")
        pt, pl = self.get_nodeattr("Padding")[:2]
        oh, ow = self.output_dims()
        self.folds()  # checks SIMD | C
        return dict(H=h, W=w, C=self.get_nodeattr("NumChannels"), SIMD=self.lanes(), BITS=self.input_format().bits,
                    KH=kh, KW=kw, SH=sh, SW=sw, DH=dh, DW=dw, PT=pt, PL=pl, OH=oh, OW=ow, PADCODE=self.pad_code())
