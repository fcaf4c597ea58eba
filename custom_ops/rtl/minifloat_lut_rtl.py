"""MinifloatLUT_rtl: Verilog backend (custom_ops/rtl/minifloat_lut.v; one ROM of output codes per lane, table.hex)."""

from custom_ops.codegen import write_hex
from custom_ops.minifloat_lut import MinifloatLUT
from custom_ops.rtl.stream_backend import RTLStreamBackend, verilog_path
from custom_ops.stream_codecs import CodesCodec


class MinifloatLUT_rtl(CodesCodec, RTLStreamBackend, MinifloatLUT):
    CORE = "minifloat_lut"
    USES_MAC_LIBRARY = False

    def hdl_params(self, model, code_dir):
        ob = self.output_format().bits
        write_hex(code_dir / "table.hex", [int(c) for c in self.table_codes()], ob)
        return dict(PE=self.get_nodeattr("PE"), I_BITS=self.input_format().bits, O_BITS=ob,
                    TABLE_FILE=verilog_path(code_dir / "table.hex"))
