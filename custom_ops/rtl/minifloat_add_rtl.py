"""MinifloatAdd_rtl: Verilog backend (custom_ops/rtl/minifloat_add.v + mf_decode / mf_threshold of the MAC library).

``generate_hdl`` (FINN's ``PrepareIP``) writes thresholds.hex / codes.hex and the two-input top wrapper; rtlsim runs
Icarus with the two-stream AXI testbench (random valid gaps on both inputs, random backpressure).
"""

import shutil
from pathlib import Path

import numpy as np

from compiler.errors import UnsupportedNodeError
from custom_ops.codegen import codes_of, pack_words, unpack_words, write_hex
from custom_ops.mac import operand_params
from custom_ops.minifloat_add import MinifloatAdd
from custom_ops.rtl.icarus_backend import IcarusBackend
from custom_ops.rtl.minifloat_thresholding_rtl import signs_mask, write_threshold_memories
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend


class MinifloatAdd_rtl(IcarusBackend, MinifloatAdd, RTLBackend):
    CORE = "minifloat_add"

    def get_nodeattr_types(self):
        attrs = MinifloatAdd.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def n_input_streams(self):
        return 1 if self.get_nodeattr("const_in1") else 2

    def get_rtl_file_list(self, abspath=False):
        files = super().get_rtl_file_list(abspath)
        if self.get_nodeattr("const_in1"):
            rom = "rom_stream.v"
            files.insert(-1, str(Path(self.get_nodeattr("code_gen_dir_ipgen")) / rom) if abspath else rom)
        return files

    def generate_hdl(self, model, fpgapart, clk):
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        code_dir.mkdir(parents=True, exist_ok=True)
        c, pe, acc = self.get_nodeattr("NumChannels"), self.get_nodeattr("PE"), self.acc_bits()
        k0, k1 = (int(k) for k in self.get_nodeattr("coeffs"))
        if max(abs(k0), abs(k1)) >= 2**63:
            raise UnsupportedNodeError(f"{self.onnx_node.name}: coefficients {k0}, {k1} exceed 64 bits")
        ofmt = self.output_format()
        write_threshold_memories(code_dir, self.thresholds(model), acc + 1, ofmt)
        (ab, ae, asg), (bb, be, bsg) = operand_params(self.in_format(0)), operand_params(self.in_format(1))
        params = [f".C({c})", f".PE({pe})", f".A_BITS({ab})", f".A_E({ae})", f".A_SIGNED({asg})",
                  f".B_BITS({bb})", f".B_E({be})", f".B_SIGNED({bsg})",
                  f".K0({'-' if k0 < 0 else ''}64'sd{abs(k0)})", f".K1({'-' if k1 < 0 else ''}64'sd{abs(k1)})",
                  f".ACC_BITS({acc})", f".N_THRES({self.n_thresholds()})", f".O_BITS({ofmt.bits})",
                  f".SIGNS({signs_mask(self.signs(), c)})",
                  f'.THRESH_FILE("{(code_dir / "thresholds.hex").as_posix()}")',
                  f'.CODE_FILE("{(code_dir / "codes.hex").as_posix()}")']
        widths = {"$IW$": self.get_instream_width(0), "$IW1$": self.operand_width(1),
                  "$OW$": self.get_outstream_width()}
        if self.get_nodeattr("const_in1"):
            words = self.const_words(model)
            write_hex(code_dir / "const.hex", words, self.operand_width(1))
            widths.update({"$WORDS1$": len(words), "$FILE1$": (code_dir / "const.hex").as_posix()})
            self.write_top(code_dir, "axis_const1_wrapper.v", params, widths)
            shutil.copy(Path(__file__).resolve().parent / "rom_stream.v", code_dir / "rom_stream.v")
        else:
            self.write_top(code_dir, "axis2_wrapper.v", params, widths)

    def _run_rtlsim(self, x0, x1):
        pe = self.get_nodeattr("PE")
        streams = []
        operands = (x0,) if self.get_nodeattr("const_in1") else (x0, x1)
        for ind, x in enumerate(operands):
            fmt = self.in_format(ind)
            words = pack_words(codes_of(np.asarray(x, dtype=np.float32), fmt).reshape(-1, pe), fmt.bits)
            streams.append((words, self.get_instream_width(ind)))
        data, _ = self.run_icarus(streams, self.get_number_output_values())
        ofmt = self.output_format()
        return ofmt.decode(unpack_words(data, ofmt.bits, pe).astype(np.int64)).reshape(self.get_normal_output_shape())

    def execute_node(self, context, graph):
        if self.get_nodeattr("exec_mode") == "rtlsim":
            node = self.onnx_node
            context[node.output[0]] = self._run_rtlsim(context[node.input[0]], context[node.input[1]])
        else:
            MinifloatAdd.execute_node(self, context, graph)
