"""MinifloatAdd_rtl: Verilog backend (custom_ops/rtl/minifloat_add.v + mf_decode / mf_threshold of the MAC library).

The thresholds are memory files; the second operand is a stream port, or (``const_in1``) a constant frame streamed
from a ROM (rom_stream.v, const.hex), so the node has one input stream. rtlsim stalls every input stream at random.
"""

from compiler.errors import UnsupportedNodeError
from custom_ops.mac import operand_params
from custom_ops.minifloat_add import MinifloatAdd
from custom_ops.rtl.minifloat_thresholding_rtl import signs_mask, write_threshold_memories
from custom_ops.rtl.stream_backend import RTLStreamBackend, verilog_path
from custom_ops.stream_codecs import AddCodec


def _int64_literal(k):
    """A signed 64-bit Verilog literal of the integer coefficient ``k``."""
    return f"{'-' if k < 0 else ''}64'sd{abs(k)}"


class MinifloatAdd_rtl(AddCodec, RTLStreamBackend, MinifloatAdd):
    CORE = "minifloat_add"

    def support_files(self):
        return ["rom_stream.v"] if self.get_nodeattr("const_in1") else []

    def hdl_params(self, model, code_dir):
        c, acc = self.get_nodeattr("NumChannels"), self.acc_bits()
        k0, k1 = (int(k) for k in self.get_nodeattr("coeffs"))
        if max(abs(k0), abs(k1)) >= 2**63:
            raise UnsupportedNodeError(f"{self.onnx_node.name}: coefficients {k0}, {k1} exceed 64 bits")
        no_act = self.get_nodeattr("noActivation")
        # noActivation: no threshold stage (the core ignores the file names)
        files = {k: verilog_path(code_dir / f) for k, f in (("THRESH_FILE", "thresholds.hex"),
                                                             ("CODE_FILE", "codes.hex"))} if no_act else \
            write_threshold_memories(code_dir, self.thresholds(model), acc + 1, self.output_format())
        (ab, ae, asg), (bb, be, bsg) = operand_params(self.in_format(0)), operand_params(self.in_format(1))
        return dict(C=c, PE=self.get_nodeattr("PE"), A_BITS=ab, A_E=ae, A_SIGNED=asg, B_BITS=bb, B_E=be,
                    B_SIGNED=bsg, K0=_int64_literal(k0), K1=_int64_literal(k1), ACC_BITS=acc,
                    N_THRES=max(1, self.n_thresholds()), O_BITS=self.get_output_datatype().bitwidth(),
                    NO_ACT=no_act, SIGNS=signs_mask(self.signs(), c), **files)

    def hdl_in1(self, model, code_dir):
        if self.get_nodeattr("const_in1"):
            return self.in1_rom(self.operand_width(1), self.const_words(model), code_dir / "const.hex")
        return self.in1_stream()
