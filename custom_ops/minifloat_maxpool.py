"""MinifloatMaxPool: max pooling of a channels-last minifloat/integer code stream (non-overlapping windows, or the
windows of a sliding-window generator).

Contract (the lowered graph's qonnx ``MaxPoolNHWC`` with kernel = stride, no padding, floor mode): input ``x``
(1, H, W, C) values of ``inputDataType``, output (1, H // KH, W // KW, C) with

    y[0, oh, ow, c] = max_{kh < KH, kw < KW} x[0, oh*KH + kh, ow*KW + kw, c]

(rows/columns beyond the last whole window are dropped, as ONNX's floor mode does). The maximum is taken in value
order; in hardware on the codes: a sign-magnitude minifloat code orders like ``sign ? -magnitude : magnitude``, an
integer code like its two's-complement (or unsigned) value, so no decoding is needed. Exact: the output is one of
the inputs. Stream: PE channels per word, pixels row by row; one running maximum per (output column, channel
group) is kept for the current window row.

With ``WindowInput = 1`` the input is a ``MinifloatConvInpGen``'s output, the windows of an overlapping and/or padded
max pooling (ONNX ``MaxPool`` with strides and pads; the generator pads with the format's lowest value, which ONNX's
-inf padding equals as every window holds an input pixel): ``IFMDim = [OH, OW]`` the window positions, ``PoolDim =
[KH, KW]`` the window, input (1, OH, OW, KH*KW*C) in (kh, kw, c) order, output (1, OH, OW, C) with

    y[0, oh, ow, c] = max_{k < KH*KW} x[0, oh, ow, k*C + c]

The stream is the same as a non-overlapping pooling of an (OH*OW) x (KH*KW) image with a 1 x (KH*KW) window
(``core_dims``), which the hardware computes.
"""

import numpy as np

from compiler.errors import UnsupportedNodeError
from compiler.numerics import MinifloatFormat
from custom_ops.pixel_stream import PixelStreamOp


class MinifloatMaxPool(PixelStreamOp):
    def op_attrs(self):
        return {"PoolDim": ("ints", True, [2, 2]), "WindowInput": ("i", False, 0, {0, 1})}

    def window_input(self):
        return bool(self.get_nodeattr("WindowInput"))

    def core_dims(self):
        """(H, W, KH, KW) of the non-overlapping pooling the hardware runs on this stream."""
        (h, w), (kh, kw) = self.get_nodeattr("IFMDim"), self.get_nodeattr("PoolDim")
        return (h * w, kh * kw, 1, kh * kw) if self.window_input() else (h, w, kh, kw)

    def get_normal_input_shape(self, ind=0):
        if not self.window_input():
            return super().get_normal_input_shape(ind)
        (h, w), (kh, kw) = self.get_nodeattr("IFMDim"), self.get_nodeattr("PoolDim")
        return (1, h, w, kh * kw * self.get_nodeattr("NumChannels"))

    def get_folded_input_shape(self, ind=0):
        if not self.window_input():
            return super().get_folded_input_shape(ind)
        (h, w), (kh, kw) = self.get_nodeattr("IFMDim"), self.get_nodeattr("PoolDim")
        return (1, h, w, kh * kw * self.folds(), self.lanes())

    def output_dims(self):
        h, w = self.get_nodeattr("IFMDim")
        if self.window_input():
            return h, w
        kh, kw = self.get_nodeattr("PoolDim")
        if h < kh or w < kw:
            raise UnsupportedNodeError(f"{self.onnx_node.name}: {kh}x{kw} pooling window larger than the {h}x{w} input")
        return h // kh, w // kw

    def get_normal_output_shape(self, ind=0):
        oh, ow = self.output_dims()
        return (1, oh, ow, self.get_nodeattr("NumChannels"))

    def get_exp_cycles(self):
        return self.get_number_input_words()

    def compare_kind(self):
        """0: sign-magnitude minifloat codes, 1: signed integers, 2: unsigned integers (the RTL comparator)."""
        fmt = self.input_format()
        if isinstance(fmt, MinifloatFormat):
            return 0
        return 1 if fmt.signed else 2

    def execute_python(self, x):
        oh, ow = self.output_dims()
        kh, kw = self.get_nodeattr("PoolDim")
        c = self.get_nodeattr("NumChannels")
        if self.window_input():
            return np.asarray(x, dtype=np.float32).reshape(len(x), oh, ow, kh * kw, c).max(axis=3)
        x = np.asarray(x, dtype=np.float32)[:, :oh * kh, :ow * kw, :]
        return x.reshape(len(x), oh, kh, ow, kw, c).max(axis=(2, 4))

    def execute_node(self, context, graph):
        self.output_tensor(context, self.execute_python(self.input_tensor(context)))

    def lut_estimation(self, fpgapart=None):
        """Per lane a comparator and a 2:1 mux of the code width, plus the row buffer of running maxima in LUTRAM
        (64 bits per LUT) and ~60 LUTs of counters."""
        bits, pe = self.input_format().bits, self.lanes()
        h, w, kh, kw = self.core_dims()
        row_bits = (w // kw) * self.get_nodeattr("NumChannels") * bits
        return int(60 + pe * (2 * bits + 2) + np.ceil(row_bits / 64))
