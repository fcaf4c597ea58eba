"""MinifloatReorder_rtl: Verilog backend (custom_ops/rtl/minifloat_reorder.v; the read addresses are addr.hex, the
words of padding and constants const.hex, an identity reorder is a copy)."""

from custom_ops.codegen import write_hex
from custom_ops.minifloat_reorder import MinifloatReorder
from custom_ops.rtl.stream_backend import RTLStreamBackend, verilog_path
from custom_ops.stream_codecs import ReorderCodec


class MinifloatReorder_rtl(ReorderCodec, RTLStreamBackend, MinifloatReorder):
    CORE = "minifloat_reorder"
    USES_MAC_LIBRARY = False

    def hdl_params(self, model, code_dir):
        addr, const = code_dir / "addr.hex", code_dir / "const.hex"
        write_hex(addr, [] if self.is_identity() else self.read_words(), 32)
        words = [0] if self.is_identity() else self.const_words()[0]
        write_hex(const, words, self.get_instream_width())
        return dict(WORDS=self.n_elements() // self.lanes(), OUT_WORDS=self.get_number_output_values(),
                    WIDTH=self.get_instream_width(), IDENTITY=int(self.is_identity()), CONST_WORDS=len(words),
                    ADDR_FILE=verilog_path(addr), CONST_FILE=verilog_path(const))
