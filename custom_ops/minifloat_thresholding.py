"""MinifloatThresholding: standalone requantizer of an exact integer stream (FINN HWCustomOp).

Arithmetic contract (bit exact, the lowered graph's ``MinifloatThreshold`` on the last axis): input ``acc``
(..., C) integers of ``inputDataType`` (INTn, e.g. a residual sum or a pooling sum), thresholds ``T`` (C, N)
integers non-decreasing along N, ``channel_signs`` (C, +1/-1, empty = all +1):

    out[..., c] = out_values[#{i : sign[c] * acc[..., c] >= T[c, i]}]

with ``out_values`` the sorted values of ``outputDataType``. Folding: PE channels per cycle, one stream word of PE
accumulators in, one word of PE output codes out (element 0 in the LSBs).
"""

from qonnx.core.datatype import DataType

from custom_ops.channel_stream import ChannelStreamOp
from custom_ops.general.threshold import apply_thresholds


class MinifloatThresholding(ChannelStreamOp):
    THRESHOLD_INPUT = 1

    def op_attrs(self):
        return {"inputDataType": ("s", True, ""), "channel_signs": ("ints", False, [])}

    def acc_bits(self):
        return DataType[self.get_nodeattr("inputDataType")].bitwidth()

    def get_input_datatype(self, ind=0):
        return DataType[self.get_nodeattr("inputDataType")]

    def get_instream_width(self, ind=0):
        return 0 if ind else self.get_nodeattr("PE") * self.acc_bits()

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["s_axis"] = [("in0_V", self.get_instream_width_padded(0))]
        return intf

    def verify_node(self):
        return [f"{self.onnx_node.name}: {self.get_nodeattr('inputDataType')} -> {self.get_nodeattr('outputDataType')}"]

    def lut_estimation(self, fpgapart=None):
        """The PE threshold stages of ACC_BITS + 1 bit thresholds (sign headroom; ``custom_ops/threshold_cost.py``,
        Yosys-fitted on this core) and the output registers."""
        return self.threshold_stage_luts(self.acc_bits() + 1) + self.get_nodeattr("PE") * self.output_format().bits

    def ff_estimation(self, fpgapart=None):
        pe, width = self.get_nodeattr("PE"), self.acc_bits() + 1
        return int(pe * (self.acc_bits() + self.output_format().bits) + 16 + self.threshold_stage_ffs(width))

    def get_op_and_param_counts(self):
        return {f"param_threshold_{self.get_nodeattr('inputDataType')}":
                self.get_nodeattr("NumChannels") * self.n_thresholds()}

    def execute_python(self, acc, thresholds):
        return apply_thresholds(acc, thresholds, self.output_format().values(), -1, self.signs())

    def execute_node(self, context, graph):
        node = self.onnx_node
        context[node.output[0]] = self.execute_python(context[node.input[0]], self.thresholds(context))
