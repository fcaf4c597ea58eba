"""MinifloatGlobalAccPool_rtl: Verilog backend (custom_ops/rtl/minifloat_global_acc_pool.v + the MAC library's
mf_decode)."""

from compiler.numerics import IntFormat
from custom_ops.minifloat_global_acc_pool import MinifloatGlobalAccPool
from custom_ops.rtl.pixel_stream_rtl import PixelStreamRTL


class MinifloatGlobalAccPool_rtl(PixelStreamRTL, MinifloatGlobalAccPool):
    CORE = "minifloat_global_acc_pool"
    USES_MAC_LIBRARY = True

    def hdl_params(self, model, code_dir):
        fi = self.input_format()
        integer = isinstance(fi, IntFormat)
        self.folds()
        return dict(NPIX=self.pixels(), C=self.get_nodeattr("NumChannels"), PE=self.lanes(), BITS=fi.bits,
                    E=0 if integer else fi.exponent_bits, SIGNED=int(fi.signed) if integer else 1,
                    ACC_BITS=self.acc_bits())
