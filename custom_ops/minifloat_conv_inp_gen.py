"""MinifloatConvInpGen: sliding-window (im2col) generator for minifloat/integer code streams, with padding.

FINN's ConvolutionInputGenerator only accepts integer datatypes (``InferConvInpGen`` refuses the FLOAT<e,m,b> of a
minifloat stream) and its simulation needs Vivado, so minifinn moves the codes itself. The op is a data mover: no
arithmetic, bit exact by construction.

Contract (the lowered graph's qonnx ``Im2Col`` on channels-last data): input ``x`` (1, H, W, C), kernel (KH, KW),
stride (SH, SW), dilation (DH, DW), padding [top, left, bottom, right] with the value ``PadValue`` (0 for a
convolution: the code of +0 in every format; the format's lowest value for max pooling, which ONNX pads with -inf);
output ``y`` (1, OH, OW, KH*KW*C) with

    y[0, oh, ow, (kh*KW + kw)*C + c] = x_padded[0, oh*SH + kh*DH, ow*SW + kw*DW, c]

Stream: pixels row by row, ``C / SIMD`` words of ``SIMD`` codes each; output windows in (oh, ow, kh, kw, c) order,
``SIMD`` codes per word (what MinifloatMVAU with ``SIMD`` lanes consumes). The RTL buffers two frames (ping-pong):
one is written while the windows of the other are read, so a frame takes max(input words, output words) cycles.
"""

import numpy as np

from compiler.errors import UnsupportedNodeError
from custom_ops.pixel_stream import PixelStreamOp


class MinifloatConvInpGen(PixelStreamOp):
    FOLD_ATTR = "SIMD"

    def op_attrs(self):
        return {
            "ConvKernelDim": ("ints", True, [1, 1]),
            "Stride": ("ints", False, [1, 1]),
            "Dilation": ("ints", False, [1, 1]),
            "Padding": ("ints", False, [0, 0, 0, 0]),  # [top, left, bottom, right], as qonnx Im2Col's pad_amount
            "PadValue": ("f", False, 0.0),  # a value of inputDataType
        }

    def output_dims(self):
        h, w = self.get_nodeattr("IFMDim")
        kh, kw = self.get_nodeattr("ConvKernelDim")
        sh, sw = self.get_nodeattr("Stride")
        dh, dw = self.get_nodeattr("Dilation")
        pt, pl, pb, pr = self.get_nodeattr("Padding")
        oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
        ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
        if oh < 1 or ow < 1:
            raise UnsupportedNodeError(f"{self.onnx_node.name}: a {kh}x{kw} window does not fit the padded {h}x{w} "
                                       "input")
        return oh, ow

    def get_normal_output_shape(self, ind=0):
        oh, ow = self.output_dims()
        kh, kw = self.get_nodeattr("ConvKernelDim")
        return (1, oh, ow, kh * kw * self.get_nodeattr("NumChannels"))

    def get_exp_cycles(self):
        """Ping-pong frame buffers: input and output overlap, the longer of the two sets the pace."""
        return max(self.get_number_input_words(), self.get_number_output_values())

    def window_indices(self):
        """(OH*OW*KH*KW, 2) padded-input coordinates (row, col) of every window element, in output order."""
        oh, ow = self.output_dims()
        kh, kw = self.get_nodeattr("ConvKernelDim")
        sh, sw = self.get_nodeattr("Stride")
        dh, dw = self.get_nodeattr("Dilation")
        r = (np.arange(oh)[:, None, None, None] * sh + np.arange(kh)[None, None, :, None] * dh)
        c = (np.arange(ow)[None, :, None, None] * sw + np.arange(kw)[None, None, None, :] * dw)
        r, c = np.broadcast_arrays(r, c)
        return np.stack([r.ravel(), c.ravel()], axis=1)

    def pad_code(self):
        """The code the padding positions carry (``PadValue`` in ``inputDataType``; it must be one of its values)."""
        fmt, value = self.input_format(), np.float32(self.get_nodeattr("PadValue"))
        if value not in fmt.values():
            raise UnsupportedNodeError(f"{self.onnx_node.name}: PadValue {float(value)} is not a value of {fmt.name}")
        return int(fmt.encode(np.asarray([value], dtype=np.float32))[0])

    def execute_python(self, x):
        pt, pl, pb, pr = self.get_nodeattr("Padding")
        xp = np.pad(np.asarray(x, dtype=np.float32), ((0, 0), (pt, pb), (pl, pr), (0, 0)),
                    constant_values=np.float32(self.get_nodeattr("PadValue")))
        idx = self.window_indices()
        return xp[:, idx[:, 0], idx[:, 1], :].reshape((len(xp),) + self.get_normal_output_shape()[1:])

    def execute_node(self, context, graph):
        self.output_tensor(context, self.execute_python(self.input_tensor(context)))

    # --- estimates ---------------------------------------------------------------------------------------------
    def buffer_bits(self):
        return 2 * self.get_number_input_words() * self.get_instream_width()

    def bram_estimation(self, fpgapart=None):
        if self.buffer_bits() <= 4096:  # small buffers go to LUTRAM
            return 0
        return self.bram18_for(self.get_instream_width(), 2 * self.get_number_input_words())

    def lut_estimation(self, fpgapart=None):
        """Counters and address arithmetic (~150 LUTs), the 4-word output FIFO and padding mux per bit, plus
        LUTRAM (64 bits per LUT) when the frame buffers are small."""
        width = self.get_instream_width()
        lutram = int(np.ceil(self.buffer_bits() / 64)) if self.bram_estimation() == 0 else 0
        return int(150 + 3 * width + lutram)

    def get_op_and_param_counts(self):
        return {}
