"""MinifloatSoftmax_rtl: Verilog backend (custom_ops/rtl/minifloat_softmax.v: row buffer, exp ROMs, one threshold
multiplier, PE x K comparators).

``generate_hdl`` (FINN's ``PrepareIP``) writes the ROM files (etab.hex, shift.hex, nums.hex, bias.hex, codes.hex)
and the top wrapper; rtlsim runs Icarus with the generic AXI-stream testbench (random valid gaps and
backpressure), like the other minifinn RTL ops.
"""

from pathlib import Path

import numpy as np

from custom_ops.codegen import codes_of, pack_words, unpack_words, write_hex
from custom_ops.minifloat_softmax import MinifloatSoftmax
from custom_ops.rtl.icarus_backend import IcarusBackend
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend


class MinifloatSoftmax_rtl(IcarusBackend, MinifloatSoftmax, RTLBackend):
    CORE = "minifloat_softmax"
    USES_MAC_LIBRARY = False

    def get_nodeattr_types(self):
        attrs = MinifloatSoftmax.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def generate_hdl(self, model, fpgapart, clk):
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        code_dir.mkdir(parents=True, exist_ok=True)
        hw = self.hw_params()
        etab, shift = self.rom_tables()
        nums, bias, _, _ = self.row_thresholds()
        ofmt = self.output_format()
        files = {"ETAB_FILE": ("etab.hex", etab, hw["EB"]), "SHIFT_FILE": ("shift.hex", shift, hw["HB"]),
                 "NUMS_FILE": ("nums.hex", list(nums) or [0], hw["NB"]),
                 "BIAS_FILE": ("bias.hex", list(bias) or [0], 1),
                 "CODES_FILE": ("codes.hex", [int(v) for v in codes_of(ofmt.values(), ofmt)], ofmt.bits)}
        params = [f".{k}({int(v == 'true') if k == 'EXACT' else v})" for k, v in hw.items()]
        for key, (name, words, bits) in files.items():
            write_hex(code_dir / name, words, bits)
            params.append(f'.{key}("{(code_dir / name).as_posix()}")')
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
            MinifloatSoftmax.execute_node(self, context, graph)
