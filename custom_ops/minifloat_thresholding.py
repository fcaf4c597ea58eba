"""MinifloatThresholding: standalone requantizer of an exact integer stream (FINN HWCustomOp).

Arithmetic contract (bit exact, the lowered graph's ``MinifloatThreshold`` on the last axis): input ``acc``
(..., C) integers of ``inputDataType`` (INTn, e.g. a residual sum or a pooling sum), thresholds ``T`` (C, N)
integers non-decreasing along N, ``channel_signs`` (C, +1/-1, empty = all +1):

    out[..., c] = out_values[#{i : sign[c] * acc[..., c] >= T[c, i]}]

with ``out_values`` the sorted values of ``outputDataType``. Folding: PE channels per cycle, one stream word of PE
accumulators in, one word of PE output codes out (element 0 in the LSBs).
"""

import numpy as np
from qonnx.core.datatype import DataType

from compiler.errors import UnsupportedNodeError
from custom_ops.general.common import format_of
from custom_ops.general.threshold import apply_thresholds
from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp


class MinifloatThresholding(HWCustomOp):
    def get_nodeattr_types(self):
        attrs = {
            "NumChannels": ("i", True, 0),
            "PE": ("i", True, 1),
            "inputDataType": ("s", True, ""),
            "outputDataType": ("s", True, ""),
            "channel_signs": ("ints", False, []),
            "numInputVectors": ("ints", False, [1]),
            "rtlsim_dir": ("s", False, ""),
        }
        attrs.update(super().get_nodeattr_types())
        return attrs

    # --- formats and shapes ----------------------------------------------------------------------------------
    def output_format(self):
        return format_of(self.get_nodeattr("outputDataType"), self.onnx_node.name)

    def acc_bits(self):
        return DataType[self.get_nodeattr("inputDataType")].bitwidth()

    def n_thresholds(self):
        return len(self.output_format().values()) - 1

    def get_input_datatype(self, ind=0):
        return DataType[self.get_nodeattr("inputDataType")]

    def get_output_datatype(self, ind=0):
        return DataType[self.get_nodeattr("outputDataType")]

    def folds(self):
        c, pe = self.get_nodeattr("NumChannels"), self.get_nodeattr("PE")
        if c % pe:
            raise UnsupportedNodeError(f"{self.onnx_node.name}: PE={pe} must divide NumChannels={c}")
        return c // pe

    def get_normal_input_shape(self, ind=0):
        if ind == 1:
            return (self.get_nodeattr("NumChannels"), self.n_thresholds())
        return tuple(list(self.get_nodeattr("numInputVectors")) + [self.get_nodeattr("NumChannels")])

    def get_normal_output_shape(self, ind=0):
        return self.get_normal_input_shape(0)

    def get_folded_input_shape(self, ind=0):
        return tuple(list(self.get_nodeattr("numInputVectors")) + [self.folds(), self.get_nodeattr("PE")])

    def get_folded_output_shape(self, ind=0):
        return self.get_folded_input_shape(0)

    def get_instream_width(self, ind=0):
        return 0 if ind else self.get_nodeattr("PE") * self.acc_bits()

    def get_outstream_width(self, ind=0):
        return self.get_nodeattr("PE") * self.output_format().bits

    def get_number_output_values(self):
        return int(np.prod(self.get_nodeattr("numInputVectors"))) * self.folds()

    def get_exp_cycles(self):
        return self.get_number_output_values()

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["s_axis"] = [("in0_V", self.get_instream_width_padded(0))]
        return intf

    def make_shape_compatible_op(self, model):
        return super().make_const_shape_op(self.get_normal_output_shape())

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], self.get_output_datatype())

    def verify_node(self):
        return [f"{self.onnx_node.name}: {self.get_nodeattr('inputDataType')} -> {self.get_nodeattr('outputDataType')}"]

    # --- estimates (analytic: PE x N comparators of acc_bits, thresholds in LUTRAM) --------------------------
    def lut_estimation(self, fpgapart=None):
        pe, n, acc = self.get_nodeattr("PE"), self.n_thresholds(), self.acc_bits()
        storage = self.get_nodeattr("NumChannels") * n * acc / 64  # LUTRAM: 64 bits per LUT
        return int(round(pe * n * (acc / 2 + 1) + storage + pe * self.output_format().bits))

    def bram_estimation(self, fpgapart=None):
        return 0

    def dsp_estimation(self, fpgapart=None):
        return 0

    def node_res_estimation(self, fpgapart):
        return {"BRAM_18K": 0, "BRAM_efficiency": 1.0, "LUT": self.lut_estimation(), "URAM": 0,
                "URAM_efficiency": 1.0, "DSP": 0,
                "FF": int(self.get_nodeattr("PE") * (self.acc_bits() + self.output_format().bits) + 16)}

    def get_op_and_param_counts(self):
        return {f"param_threshold_{self.get_nodeattr('inputDataType')}":
                self.get_nodeattr("NumChannels") * self.n_thresholds()}

    # --- golden model ------------------------------------------------------------------------------------------
    def thresholds(self, model_or_context):
        name = self.onnx_node.input[1]
        t = model_or_context[name] if isinstance(model_or_context, dict) else model_or_context.get_initializer(name)
        t = np.asarray(t, dtype=np.int64)
        return np.repeat(t, self.get_nodeattr("NumChannels"), axis=0) if t.shape[0] == 1 else t

    def signs(self):
        signs = list(self.get_nodeattr("channel_signs"))
        return signs * self.get_nodeattr("NumChannels") if len(signs) == 1 else signs

    def execute_python(self, acc, thresholds):
        return apply_thresholds(acc, thresholds, self.output_format().values(), -1, self.signs())

    def execute_node(self, context, graph):
        node = self.onnx_node
        context[node.output[0]] = self.execute_python(context[node.input[0]], self.thresholds(context))
