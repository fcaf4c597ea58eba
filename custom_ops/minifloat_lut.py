"""MinifloatLUT: any elementwise function of one <= 8-bit code as a 2^bits table (FINN HWCustomOp).

Arithmetic contract (bit exact): input ``x`` (..., C) holds values of ``inputDataType``; with ``c`` the code of
each element (``compiler.numerics`` ``encode``), ``y = table[c]``, where ``table`` (attribute, 2^bits output values
in input-code order) holds values of ``outputDataType``. ``passes.elementwise_tables`` builds the table by running
the original float ops (e.g. GELU between two quantizers) on every input code with onnxruntime, so the op equals
the QONNX float island bit for bit. Folding: PE elements per cycle.
"""

import numpy as np

from compiler.errors import UnsupportedNodeError
from compiler.qonnx_formats import format_from_datatype, qonnx_datatype
from custom_ops.channel_stream import ChannelStreamOp


class MinifloatLUT(ChannelStreamOp):
    REQUANTIZER = "table"

    def op_attrs(self):
        return {"inputDataType": ("s", True, ""), "table": ("floats", True, [])}

    def input_format(self):
        return format_from_datatype(self.get_nodeattr("inputDataType"), self.onnx_node.name)

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
        return qonnx_datatype(self.get_nodeattr("inputDataType"))

    def get_instream_width(self, ind=0):
        return self.get_nodeattr("PE") * self.input_format().bits

    def verify_node(self):
        return [f"{self.onnx_node.name}: {len(self.get_nodeattr('table'))}-entry table"]

    def lut_estimation(self, fpgapart=None):
        """One 2^bits x out_bits ROM per lane in LUTs (a 6-input LUT holds 64 x 1 bits), analytic."""
        entries, ob = 2 ** self.input_format().bits, self.output_format().bits
        return int(self.get_nodeattr("PE") * ob * max(1, entries // 64) + 8)

    def ff_estimation(self, fpgapart=None):
        return self.get_outstream_width() + 8

    def execute_python(self, x):
        codes = self.input_format().encode(np.asarray(x, dtype=np.float32)).astype(np.int64)
        return self.table_values()[codes]

    def execute_node(self, context, graph):
        node = self.onnx_node
        context[node.output[0]] = self.execute_python(context[node.input[0]])
