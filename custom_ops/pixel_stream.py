"""PixelStreamOp: common part of minifinn's ops on a channels-last feature map (sliding window, max pooling, global
accumulating pooling).

Stream contract: the input ``(1, H, W, C)`` (``IFMDim = [H, W]``, ``NumChannels = C``) arrives pixel by pixel in
row-major order, each pixel as ``C / PE`` words of ``PE`` codes (element 0 in the least significant bits), the
layout FINN's ConvolutionInputGenerator/StreamingMaxPool use. Subclasses define the output shape and arithmetic.
"""

import numpy as np

from compiler.errors import UnsupportedNodeError
from compiler.qonnx_formats import format_from_datatype, qonnx_datatype
from custom_ops.capabilities import HWOpCapabilities
from custom_ops.general.common import batch_shape
from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp


class PixelStreamOp(HWOpCapabilities, HWCustomOp):
    FOLD_ATTR = "PE"  # channels per word; the sliding window folds "SIMD", as in FINN

    def op_attrs(self):
        return {}

    def get_nodeattr_types(self):
        attrs = {
            "IFMDim": ("ints", True, [1, 1]),
            "NumChannels": ("i", True, 0),
            self.FOLD_ATTR: ("i", False, 1),
            "inputDataType": ("s", True, ""),
            "outputDataType": ("s", True, ""),
            "rtlsim_dir": ("s", False, ""),
        }
        attrs.update(self.op_attrs())
        attrs.update(super().get_nodeattr_types())
        return attrs

    # --- formats -------------------------------------------------------------------------------------------------
    def input_format(self):
        return format_from_datatype(self.get_nodeattr("inputDataType"), self.onnx_node.name)

    def output_format(self):
        return format_from_datatype(self.get_nodeattr("outputDataType"), self.onnx_node.name)

    def get_input_datatype(self, ind=0):
        return qonnx_datatype(self.get_nodeattr("inputDataType"))

    def get_output_datatype(self, ind=0):
        return qonnx_datatype(self.get_nodeattr("outputDataType"))

    # --- shapes and streams ----------------------------------------------------------------------------------------
    def lanes(self):
        return self.get_nodeattr(self.FOLD_ATTR)

    def folds(self):
        c, pe = self.get_nodeattr("NumChannels"), self.lanes()
        if pe < 1 or c % pe:
            raise UnsupportedNodeError(f"{self.onnx_node.name}: {self.FOLD_ATTR}={pe} must divide NumChannels={c}")
        return c // pe

    def get_normal_input_shape(self, ind=0):
        h, w = self.get_nodeattr("IFMDim")
        return (1, h, w, self.get_nodeattr("NumChannels"))

    def get_folded_input_shape(self, ind=0):
        h, w = self.get_nodeattr("IFMDim")
        return (1, h, w, self.folds(), self.lanes())

    def get_folded_output_shape(self, ind=0):
        shape = list(self.get_normal_output_shape())
        last = shape[-1]
        pe = self.lanes()
        return tuple(shape[:-1] + [last // pe, pe])

    def get_instream_width(self, ind=0):
        return self.lanes() * self.get_input_datatype().bitwidth()

    def get_outstream_width(self, ind=0):
        return self.lanes() * self.get_output_datatype().bitwidth()

    def get_number_input_words(self):
        return int(np.prod(self.get_folded_input_shape()[:-1]))

    def get_number_output_values(self):
        return int(np.prod(self.get_folded_output_shape()[:-1]))

    def make_shape_compatible_op(self, model):
        return super().make_const_shape_op(self.get_normal_output_shape())

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], self.get_output_datatype())

    def verify_node(self):
        return [f"{self.onnx_node.name}: {self.get_nodeattr('inputDataType')} -> "
                f"{self.get_nodeattr('outputDataType')}"]

    def input_tensor(self, context):
        """The input from the execution context in the normal (1, H, W, C) shape, or (N, H, W, C) for a batch of N
        images (a producer may hand over the same elements in another shape, e.g. a flattened one)."""
        x = np.asarray(context[self.onnx_node.input[0]])
        want = self.get_normal_input_shape()
        shape = batch_shape(x, want)
        if shape is None:
            raise UnsupportedNodeError(f"{self.onnx_node.name}: input has shape {x.shape}, expected {want}")
        return x.reshape(shape)

    def output_tensor(self, context, y):
        """Store ``y`` in the shape the graph declares for the output tensor."""
        name = self.onnx_node.output[0]
        shape = context[name].shape if name in context and context[name] is not None else None
        context[name] = y.reshape(shape) if shape is not None and int(np.prod(shape)) == y.size else y

    # --- estimates ---------------------------------------------------------------------------------------------
    def dsp_estimation(self, fpgapart=None):
        return 0

    def uram_estimation(self):
        return 0

    def bram_estimation(self, fpgapart=None):
        return 0

    def ff_estimation(self, fpgapart=None):
        return self.get_instream_width() + self.get_outstream_width() + 32

    def node_res_estimation(self, fpgapart):
        return {"BRAM_18K": self.bram_estimation(), "BRAM_efficiency": 1.0, "LUT": self.lut_estimation(),
                "URAM": 0, "URAM_efficiency": 1.0, "DSP": 0, "FF": self.ff_estimation()}

    @staticmethod
    def bram18_for(width, depth):
        """BRAM_18K count of a simple dual-port memory of ``width`` x ``depth`` bits: the cheapest of the
        primitive's aspect ratios (1x16k, 2x8k, 4x4k, 9x2k, 18x1k, 36x512), cascaded in width and depth."""
        if depth <= 0 or width <= 0:
            return 0
        modes = ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512))
        return int(min(np.ceil(width / w) * np.ceil(depth / d) for w, d in modes))
