"""MinifloatLUT: any elementwise function of one <= 8-bit code as a 2^bits table (FINN HWCustomOp).

Arithmetic contract (bit exact): input ``x`` (..., C) holds values of ``inputDataType``; with ``c`` the code of
each element (``compiler.numerics`` ``encode``), ``y = table[c]``, where ``table`` (attribute, 2^bits output values
in input-code order) holds values of ``outputDataType``. ``passes.elementwise_tables`` builds the table by running
the original float ops (e.g. GELU between two quantizers) on every input code with onnxruntime, so the op equals
the QONNX float island bit for bit. Folding: PE elements per cycle.
"""

import numpy as np
from qonnx.core.datatype import DataType

from compiler.errors import UnsupportedNodeError
from custom_ops.general.common import format_of
from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp


class MinifloatLUT(HWCustomOp):
    def get_nodeattr_types(self):
        attrs = {
            "NumChannels": ("i", True, 0),
            "PE": ("i", True, 1),
            "inputDataType": ("s", True, ""),
            "outputDataType": ("s", True, ""),
            "table": ("floats", True, []),
            "numInputVectors": ("ints", False, [1]),
            "rtlsim_dir": ("s", False, ""),
        }
        attrs.update(super().get_nodeattr_types())
        return attrs

    def input_format(self):
        return format_of(self.get_nodeattr("inputDataType"), self.onnx_node.name)

    def output_format(self):
        return format_of(self.get_nodeattr("outputDataType"), self.onnx_node.name)

    def table_values(self):
        table = np.asarray(self.get_nodeattr("table"), dtype=np.float32)
        if len(table) != 2 ** self.input_format().bits:
            raise UnsupportedNodeError(f"{self.onnx_node.name}: table has {len(table)} entries, expected "
                                       f"2^{self.input_format().bits}")
        return table

    def table_codes(self):
        """Output code of every input code (the ROM contents)."""
        return self.output_format().encode(self.table_values()).astype(np.int64)

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
        return tuple(list(self.get_nodeattr("numInputVectors")) + [self.get_nodeattr("NumChannels")])

    def get_normal_output_shape(self, ind=0):
        return self.get_normal_input_shape()

    def get_folded_input_shape(self, ind=0):
        return tuple(list(self.get_nodeattr("numInputVectors")) + [self.folds(), self.get_nodeattr("PE")])

    def get_folded_output_shape(self, ind=0):
        return self.get_folded_input_shape()

    def get_instream_width(self, ind=0):
        return self.get_nodeattr("PE") * self.input_format().bits

    def get_outstream_width(self, ind=0):
        return self.get_nodeattr("PE") * self.output_format().bits

    def get_number_output_values(self):
        return int(np.prod(self.get_nodeattr("numInputVectors"))) * self.folds()

    def get_exp_cycles(self):
        return self.get_number_output_values()

    def make_shape_compatible_op(self, model):
        return super().make_const_shape_op(self.get_normal_output_shape())

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], self.get_output_datatype())

    def verify_node(self):
        return [f"{self.onnx_node.name}: {len(self.get_nodeattr('table'))}-entry table"]

    def lut_estimation(self, fpgapart=None):
        """One 2^bits x out_bits ROM per lane in LUTs (a 6-input LUT holds 64 x 1 bits), analytic."""
        entries, ob = 2 ** self.input_format().bits, self.output_format().bits
        return int(self.get_nodeattr("PE") * ob * max(1, entries // 64) + 8)

    def bram_estimation(self, fpgapart=None):
        return 0

    def dsp_estimation(self, fpgapart=None):
        return 0

    def node_res_estimation(self, fpgapart):
        return {"BRAM_18K": 0, "BRAM_efficiency": 1.0, "LUT": self.lut_estimation(), "URAM": 0,
                "URAM_efficiency": 1.0, "DSP": 0, "FF": self.get_outstream_width() + 8}

    def execute_python(self, x):
        codes = self.input_format().encode(np.asarray(x, dtype=np.float32)).astype(np.int64)
        return self.table_values()[codes]

    def execute_node(self, context, graph):
        node = self.onnx_node
        context[node.output[0]] = self.execute_python(context[node.input[0]])
