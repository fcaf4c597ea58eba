"""MinifloatLayerNorm_rtl: Verilog backend (custom_ops/rtl/minifloat_layernorm.v + mf_decode / mf_threshold of the
MAC library): sequential division and square root per row; Icarus rtlsim with the generic AXI-stream testbench."""

from pathlib import Path

import numpy as np

from compiler.numerics import IntFormat
from custom_ops.codegen import codes_of, pack_words, unpack_words
from custom_ops.minifloat_layernorm import MinifloatLayerNorm
from custom_ops.rtl.icarus_backend import IcarusBackend
from custom_ops.rtl.minifloat_thresholding_rtl import signs_mask, write_threshold_memories
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend


class MinifloatLayerNorm_rtl(IcarusBackend, MinifloatLayerNorm, RTLBackend):
    CORE = "minifloat_layernorm"

    def get_nodeattr_types(self):
        attrs = MinifloatLayerNorm.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def get_exp_cycles(self):
        """Per row: D / PE words in, the division (2(R + e) + 2 cycles, e <= V'/2 bits) and square root (R + 3),
        D / PE words out."""
        w = self.widths()
        return self.rows() * (2 * self.folds() + 2 * self.get_nodeattr("R") + w["V"] + w["Q"] + 4)

    def generate_hdl(self, model, fpgapart, clk):
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        code_dir.mkdir(parents=True, exist_ok=True)
        w, fi, fo = self.widths(), self.input_format(), self.output_format()
        d = self.get_nodeattr("NumChannels")
        write_threshold_memories(code_dir, self.thresholds(model), w["Z"] + 1, fo)
        integer = isinstance(fi, IntFormat)
        params = [f".D({d})", f".PE({self.get_nodeattr('PE')})", f".BITS({fi.bits})",
                  f".E({0 if integer else fi.exponent_bits})", f".SIGNED({int(fi.signed) if integer else 1})",
                  f".S1W({w['S1']})", f".S2W({w['S2']})", f".VW({w['V']})", f".NW({w['N']})", f".QW({w['Q']})",
                  f".ZW({w['Z']})", f".R({self.get_nodeattr('R')})", f".EPS({w['V']}'d{self.get_nodeattr('epsTerm')})",
                  f".N_THRES({self.n_thresholds()})", f".O_BITS({fo.bits})", f".SIGNS({signs_mask(self.signs(), d)})",
                  f'.THRESH_FILE("{(code_dir / "thresholds.hex").as_posix()}")',
                  f'.CODE_FILE("{(code_dir / "codes.hex").as_posix()}")']
        self.write_top(code_dir, "axis_wrapper.v", params,
                       {"$IW$": self.get_instream_width(), "$OW$": self.get_outstream_width()})

    def _run_rtlsim(self, x):
        fi, fo, pe = self.input_format(), self.output_format(), self.get_nodeattr("PE")
        words = pack_words(codes_of(np.asarray(x, dtype=np.float32), fi).reshape(-1, pe), fi.bits)
        data, cycles = self.run_icarus([(words, self.get_instream_width())], self.get_number_output_values())
        self.set_nodeattr("cycles_rtlsim", int(cycles))
        return fo.decode(unpack_words(data, fo.bits, pe).astype(np.int64)).reshape(self.get_normal_output_shape())

    def execute_node(self, context, graph):
        if self.get_nodeattr("exec_mode") == "rtlsim":
            node = self.onnx_node
            context[node.output[0]] = self._run_rtlsim(context[node.input[0]])
        else:
            MinifloatLayerNorm.execute_node(self, context, graph)
