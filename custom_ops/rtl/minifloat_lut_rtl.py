"""MinifloatLUT_rtl: Verilog backend (custom_ops/rtl/minifloat_lut.v; one ROM of output codes per lane).

``generate_hdl`` (FINN's ``PrepareIP``) writes table.hex and a top wrapper; rtlsim runs Icarus with the generic
AXI-stream testbench, like the other minifinn RTL ops.
"""

from pathlib import Path

import numpy as np

from custom_ops.codegen import codes_of, pack_words, unpack_words, write_hex
from custom_ops.minifloat_lut import MinifloatLUT
from custom_ops.rtl.icarus_backend import IcarusBackend
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend


class MinifloatLUT_rtl(IcarusBackend, MinifloatLUT, RTLBackend):
    CORE = "minifloat_lut"
    USES_MAC_LIBRARY = False

    def get_nodeattr_types(self):
        attrs = MinifloatLUT.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def generate_hdl(self, model, fpgapart, clk):
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        code_dir.mkdir(parents=True, exist_ok=True)
        ib, ob = self.input_format().bits, self.output_format().bits
        write_hex(code_dir / "table.hex", [int(c) for c in self.table_codes()], ob)
        params = [f".PE({self.get_nodeattr('PE')})", f".I_BITS({ib})", f".O_BITS({ob})",
                  f'.TABLE_FILE("{(code_dir / "table.hex").as_posix()}")']
        self.write_top(code_dir, "axis_wrapper.v", params,
                       {"$IW$": self.get_instream_width(), "$OW$": self.get_outstream_width()})

    def _run_rtlsim(self, x):
        fi, fo, pe = self.input_format(), self.output_format(), self.get_nodeattr("PE")
        words = pack_words(codes_of(np.asarray(x, dtype=np.float32), fi).reshape(-1, pe), fi.bits)
        data, _ = self.run_icarus([(words, self.get_instream_width())], self.get_number_output_values())
        return fo.decode(unpack_words(data, fo.bits, pe).astype(np.int64)).reshape(self.get_normal_output_shape())

    def execute_node(self, context, graph):
        if self.get_nodeattr("exec_mode") == "rtlsim":
            node = self.onnx_node
            context[node.output[0]] = self._run_rtlsim(context[node.input[0]])
        else:
            MinifloatLUT.execute_node(self, context, graph)
