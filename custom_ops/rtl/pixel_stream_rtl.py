"""PixelStreamRTL: the Verilog backend plumbing shared by the sliding-window, max-pool and global-pool cores.

A subclass sets ``CORE`` and ``USES_MAC_LIBRARY`` (IcarusBackend) and returns its Verilog parameters from
``core_params``; rtlsim packs the input values into words of ``lanes()`` codes, runs Icarus through the generic
AXI-stream testbench and unpacks the output words (codes, or two's-complement integers for accumulators).
"""

from pathlib import Path

import numpy as np

from compiler.numerics import IntFormat
from custom_ops.codegen import codes_of, pack_words, unpack_words
from custom_ops.rtl.icarus_backend import IcarusBackend
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend


class PixelStreamRTL(IcarusBackend, RTLBackend):
    def core_params(self):
        raise NotImplementedError(f"{type(self).__name__} must list its Verilog parameters")

    def generate_hdl(self, model, fpgapart, clk):
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        code_dir.mkdir(parents=True, exist_ok=True)
        params = [f".{k}({v})" for k, v in self.core_params().items()]
        self.write_top(code_dir, "axis_wrapper.v", params,
                       {"$IW$": self.get_instream_width(), "$OW$": self.get_outstream_width()})

    def _run_rtlsim(self, x):
        fi, fo, lanes = self.input_format(), self.output_format(), self.lanes()
        codes = codes_of(np.asarray(x, dtype=np.float32).reshape(-1, lanes), fi)
        words = pack_words(codes, fi.bits)
        data, cycles = self.run_icarus([(words, self.get_instream_width())], self.get_number_output_values())
        self.set_nodeattr("cycles_rtlsim", int(cycles))
        shape = self.get_normal_output_shape()
        if isinstance(fo, IntFormat) and fo.bits > 8:  # accumulators: two's-complement integers
            return unpack_words(data, fo.bits, lanes, signed=fo.signed).reshape(shape)
        return fo.decode(unpack_words(data, fo.bits, lanes).astype(np.int64)).reshape(shape)

    def execute_node(self, context, graph):
        x = self.input_tensor(context)
        y = self._run_rtlsim(x) if self.get_nodeattr("exec_mode") == "rtlsim" else self.execute_python(x)
        self.output_tensor(context, y)
