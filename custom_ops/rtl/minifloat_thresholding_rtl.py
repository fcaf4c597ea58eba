"""MinifloatThresholding_rtl: Verilog backend (custom_ops/rtl/minifloat_thresholding.v + mf_threshold).

``generate_hdl`` (FINN's ``PrepareIP``) writes thresholds.hex / codes.hex and the top wrapper; rtlsim runs Icarus
with the generic AXI-stream testbench (random valid gaps and backpressure), like MinifloatMVAU_rtl.
"""

from pathlib import Path

import numpy as np

from compiler.errors import UnsupportedNodeError
from custom_ops.codegen import codes_of, pack_words, unpack_words, write_hex
from custom_ops.minifloat_thresholding import MinifloatThresholding
from custom_ops.rtl.icarus_backend import IcarusBackend
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend


def write_threshold_memories(code_dir, thresholds, bits, ofmt):
    """thresholds.hex (one word per channel, ``bits``-bit thresholds, T_0 in the LSBs) and codes.hex (output code of
    every count) for the thresholding cores."""
    n = thresholds.shape[1]
    write_hex(code_dir / "thresholds.hex", pack_words(np.asarray(thresholds, dtype=object), bits), n * bits)
    write_hex(code_dir / "codes.hex", [int(v) for v in codes_of(ofmt.values(), ofmt)], ofmt.bits)


def signs_mask(signs, channels):
    """Verilog literal of the per-channel negation mask (bit c set for sign -1)."""
    mask = sum(1 << ch for ch, s in enumerate(signs or [1] * channels) if s < 0)
    return f"{channels}'h{mask:x}"


class MinifloatThresholding_rtl(IcarusBackend, MinifloatThresholding, RTLBackend):
    CORE = "minifloat_thresholding"

    def get_nodeattr_types(self):
        attrs = MinifloatThresholding.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def generate_hdl(self, model, fpgapart, clk):
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        code_dir.mkdir(parents=True, exist_ok=True)
        c, pe, acc = self.get_nodeattr("NumChannels"), self.get_nodeattr("PE"), self.acc_bits()
        t = self.thresholds(model)
        if t.shape != (c, self.n_thresholds()):
            raise UnsupportedNodeError(f"{self.onnx_node.name}: thresholds {t.shape}, expected ({c}, "
                                       f"{self.n_thresholds()})")
        ofmt = self.output_format()
        write_threshold_memories(code_dir, t, acc + 1, ofmt)
        params = [f".C({c})", f".PE({pe})", f".ACC_BITS({acc})", f".N_THRES({self.n_thresholds()})",
                  f".O_BITS({ofmt.bits})", f".SIGNS({signs_mask(self.signs(), c)})",
                  f'.THRESH_FILE("{(code_dir / "thresholds.hex").as_posix()}")',
                  f'.CODE_FILE("{(code_dir / "codes.hex").as_posix()}")']
        self.write_top(code_dir, "axis_wrapper.v", params,
                       {"$IW$": self.get_instream_width(), "$OW$": self.get_outstream_width()})

    def _run_rtlsim(self, acc):
        bits, pe = self.acc_bits(), self.get_nodeattr("PE")
        mask = (1 << bits) - 1
        flat = np.asarray(acc).reshape(-1, pe)
        words = pack_words(np.array([[int(v) & mask for v in row] for row in flat], dtype=object), bits)
        data, _ = self.run_icarus([(words, self.get_instream_width())], self.get_number_output_values())
        ofmt = self.output_format()
        return ofmt.decode(unpack_words(data, ofmt.bits, pe).astype(np.int64)).reshape(self.get_normal_output_shape())

    def execute_node(self, context, graph):
        if self.get_nodeattr("exec_mode") == "rtlsim":
            node = self.onnx_node
            context[node.output[0]] = self._run_rtlsim(context[node.input[0]])
        else:
            MinifloatThresholding.execute_node(self, context, graph)
