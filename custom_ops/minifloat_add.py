"""MinifloatAdd: residual add of two differently scaled minifloat/integer streams, exact, with requantization.

Arithmetic contract (bit exact; the lowered graph's ``ExactAdd`` followed by its ``MinifloatThreshold``): inputs
``x0``, ``x1`` (..., C) of ``in0DataType`` / ``in1DataType``; with integer-domain values ``x_int`` and the integer
alignment coefficients ``coeffs = [k0, k1]`` (passes/streamline.py), ``acc = k0 * x0_int + k1 * x1_int`` exactly,
then ``out[..., c] = out_values[#{i : sign[c] * acc[..., c] >= T[c, i]}]`` (``outputDataType`` values, thresholds
``T`` (C, N) an initializer). PE channels per cycle on both input streams and the output stream.
"""

import numpy as np
from qonnx.core.datatype import DataType

from compiler.errors import UnsupportedNodeError
from custom_ops.general.common import exact_ints, format_of, widen
from custom_ops.general.threshold import apply_thresholds
from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp


class MinifloatAdd(HWCustomOp):
    def get_nodeattr_types(self):
        attrs = {
            "NumChannels": ("i", True, 0),
            "PE": ("i", True, 1),
            "in0DataType": ("s", True, ""),
            "in1DataType": ("s", True, ""),
            "coeffs": ("ints", True, []),
            "accDataType": ("s", True, ""),
            "outputDataType": ("s", True, ""),
            "channel_signs": ("ints", False, []),
            "numInputVectors": ("ints", False, [1]),
            "rtlsim_dir": ("s", False, ""),
        }
        attrs.update(super().get_nodeattr_types())
        return attrs

    def in_format(self, ind):
        return format_of(self.get_nodeattr("in0DataType" if ind == 0 else "in1DataType"), self.onnx_node.name)

    def output_format(self):
        return format_of(self.get_nodeattr("outputDataType"), self.onnx_node.name)

    def acc_bits(self):
        return DataType[self.get_nodeattr("accDataType")].bitwidth()

    def n_thresholds(self):
        return len(self.output_format().values()) - 1

    def get_input_datatype(self, ind=0):
        return DataType[self.get_nodeattr("in0DataType" if ind == 0 else "in1DataType")]

    def get_output_datatype(self, ind=0):
        return DataType[self.get_nodeattr("outputDataType")]

    def folds(self):
        c, pe = self.get_nodeattr("NumChannels"), self.get_nodeattr("PE")
        if c % pe:
            raise UnsupportedNodeError(f"{self.onnx_node.name}: PE={pe} must divide NumChannels={c}")
        return c // pe

    def get_normal_input_shape(self, ind=0):
        if ind == 2:
            return (self.get_nodeattr("NumChannels"), self.n_thresholds())
        return tuple(list(self.get_nodeattr("numInputVectors")) + [self.get_nodeattr("NumChannels")])

    def get_normal_output_shape(self, ind=0):
        return self.get_normal_input_shape(0)

    def get_folded_input_shape(self, ind=0):
        return tuple(list(self.get_nodeattr("numInputVectors")) + [self.folds(), self.get_nodeattr("PE")])

    def get_folded_output_shape(self, ind=0):
        return self.get_folded_input_shape(0)

    def get_instream_width(self, ind=0):
        return 0 if ind > 1 else self.get_nodeattr("PE") * self.in_format(ind).bits

    def get_outstream_width(self, ind=0):
        return self.get_nodeattr("PE") * self.output_format().bits

    def get_number_output_values(self):
        return int(np.prod(self.get_nodeattr("numInputVectors"))) * self.folds()

    def get_exp_cycles(self):
        return self.get_number_output_values()

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["s_axis"] = [("in0_V", self.get_instream_width_padded(0)), ("in1_V", self.get_instream_width_padded(1))]
        return intf

    def make_shape_compatible_op(self, model):
        return super().make_const_shape_op(self.get_normal_output_shape())

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], self.get_output_datatype())

    def verify_node(self):
        return [f"{self.onnx_node.name}: coeffs {list(self.get_nodeattr('coeffs'))}"]

    def lut_estimation(self, fpgapart=None):
        """Analytic: two constant multipliers and an adder of acc_bits, PE x N comparators, thresholds in LUTRAM."""
        pe, n, acc = self.get_nodeattr("PE"), self.n_thresholds(), self.acc_bits()
        storage = self.get_nodeattr("NumChannels") * n * acc / 64
        return int(round(pe * (3 * acc + n * (acc / 2 + 1)) + storage))

    def bram_estimation(self, fpgapart=None):
        return 0

    def dsp_estimation(self, fpgapart=None):
        return 0

    def node_res_estimation(self, fpgapart):
        return {"BRAM_18K": 0, "BRAM_efficiency": 1.0, "LUT": self.lut_estimation(), "URAM": 0,
                "URAM_efficiency": 1.0, "DSP": 0, "FF": self.get_outstream_width() + 16}

    def thresholds(self, model_or_context):
        name = self.onnx_node.input[2]
        t = model_or_context[name] if isinstance(model_or_context, dict) else model_or_context.get_initializer(name)
        t = np.asarray(t, dtype=np.int64)
        return np.repeat(t, self.get_nodeattr("NumChannels"), axis=0) if t.shape[0] == 1 else t

    def signs(self):
        signs = list(self.get_nodeattr("channel_signs"))
        return signs * self.get_nodeattr("NumChannels") if len(signs) == 1 else signs

    def accumulate(self, x0, x1):
        k0, k1 = (int(k) for k in self.get_nodeattr("coeffs"))
        f0, f1 = self.in_format(0), self.in_format(1)
        bound = abs(k0) * f0.max_int + abs(k1) * f1.max_int
        a = widen(exact_ints(x0, f0, self.onnx_node.name), bound)
        b = widen(exact_ints(x1, f1, self.onnx_node.name), bound)
        return a * (k0 if bound >= 2**62 else np.int64(k0)) + b * (k1 if bound >= 2**62 else np.int64(k1))

    def execute_node(self, context, graph):
        node = self.onnx_node
        acc = self.accumulate(context[node.input[0]], context[node.input[1]])
        context[node.output[0]] = apply_thresholds(acc, self.thresholds(context), self.output_format().values(), -1,
                                                   self.signs())
