"""MinifloatReorder_rtl: Verilog backend (custom_ops/rtl/minifloat_reorder.v), Icarus rtlsim."""

from pathlib import Path

import numpy as np
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

from custom_ops.codegen import pack_words, unpack_words, write_hex
from custom_ops.minifloat_reorder import MinifloatReorder
from custom_ops.rtl.icarus_backend import IcarusBackend


class MinifloatReorder_rtl(IcarusBackend, MinifloatReorder, RTLBackend):
    CORE = "minifloat_reorder"
    USES_MAC_LIBRARY = False

    def get_nodeattr_types(self):
        attrs = MinifloatReorder.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def generate_hdl(self, model, fpgapart, clk):
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        code_dir.mkdir(parents=True, exist_ok=True)
        words = self.n_elements() // self.lanes()
        addr = code_dir / "addr.hex"
        write_hex(addr, [] if self.is_identity() else self.read_words(), 32)
        params = [f".WORDS({words})", f".OUT_WORDS({self.get_number_output_values()})",
                  f".WIDTH({self.get_instream_width()})", f".IDENTITY({int(self.is_identity())})",
                  f'.ADDR_FILE("{addr.as_posix()}")']
        self.write_top(code_dir, "axis_wrapper.v", params,
                       {"$IW$": self.get_instream_width(), "$OW$": self.get_outstream_width()})

    def _bits_codes(self, x):
        """Element bit patterns of the stream (codes of ≤ 8-bit formats, two's complement for wide integers)."""
        from compiler.numerics import format_from_datatype
        from custom_ops.codegen import codes_of

        fmt = format_from_datatype(self.get_nodeattr("dataType"), self.onnx_node.name)
        return fmt, codes_of(np.asarray(x, dtype=np.float64 if fmt.bits > 8 else np.float32), fmt)

    def _run_rtlsim(self, x):
        fmt, codes = self._bits_codes(x)
        pe = self.lanes()
        words = pack_words(np.asarray(codes).reshape(-1, pe), fmt.bits)
        data, cycles = self.run_icarus([(words, self.get_instream_width())], self.get_number_output_values())
        self.set_nodeattr("cycles_rtlsim", int(cycles))
        out = unpack_words(data, fmt.bits, pe, signed=getattr(fmt, "signed", False) and fmt.bits > 8)
        if fmt.bits > 8 and not fmt.is_minifloat:
            return np.asarray(out).reshape(self.get_normal_output_shape())
        return fmt.decode(np.asarray(out, dtype=np.int64)).reshape(self.get_normal_output_shape())

    def execute_node(self, context, graph):
        node = self.onnx_node
        x = context[node.input[0]]
        y = self._run_rtlsim(x) if self.get_nodeattr("exec_mode") == "rtlsim" else self.execute_python(x)
        context[node.output[0]] = y
