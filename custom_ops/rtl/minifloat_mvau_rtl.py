"""MinifloatMVAU_rtl: Verilog backend of MinifloatMVAU (custom_ops/rtl/minifloat_mvau.v + the MAC library).

``generate_hdl`` writes the weight/threshold/code-table memory files and a top wrapper into ``code_gen_dir_ipgen``
(FINN's ``PrepareIP`` calls it). rtlsim runs without Vivado: ``prepare_rtlsim`` compiles the design with Icarus
Verilog and a generic AXI-stream testbench (random valid gaps and backpressure), and ``execute_node`` in
``exec_mode="rtlsim"`` streams the input codes through it and decodes the output codes. With ``dynamic_input = 1``
the top has a second AXI stream ``in1_V`` (the matrices, FINN's MVAU mem_mode "dynamic" word order) and the
testbench (``tb_axis2.v``) stalls both input streams at random.
"""

from pathlib import Path

import numpy as np

from compiler.errors import UnsupportedNodeError
from custom_ops.codegen import codes_of, pack_words, unpack_words, write_hex
from custom_ops.mac import operand_params
from custom_ops.minifloat_mvau import MinifloatMVAU
from custom_ops.rtl.icarus_backend import IcarusBackend
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend


class MinifloatMVAU_rtl(IcarusBackend, MinifloatMVAU, RTLBackend):
    """Verilog MinifloatMVAU: embedded weights, or (dynamic_input = 1) a matrix stream in1."""

    CORE = "minifloat_mvau"

    def get_nodeattr_types(self):
        attrs = MinifloatMVAU.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def n_input_streams(self):
        return 2 if self.get_nodeattr("dynamic_input") else 1

    def generate_hdl(self, model, fpgapart, clk):
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        code_dir.mkdir(parents=True, exist_ok=True)
        pe, simd = self.get_nodeattr("PE"), self.get_nodeattr("SIMD")
        fa, fw = self.input_format(), self.weight_format()
        dyn = self.get_nodeattr("dynamic_input")
        if not dyn:
            write_hex(code_dir / "weights.hex", self.weight_rom_words(model), pe * simd * fw.bits)
        acc_bits = self.acc_bits()
        n_thr = self.n_thresholds()
        if n_thr:
            thr = self.threshold_ints(model)
            if thr.shape != (self.get_nodeattr("MH"), n_thr):
                raise UnsupportedNodeError(
                    f"{self.onnx_node.name}: thresholds have shape {thr.shape}, expected "
                    f"({self.get_nodeattr('MH')}, {n_thr}) for output {self.get_nodeattr('outputDataType')}"
                )
            words = pack_words(np.asarray(thr, dtype=object), acc_bits)  # one word per channel, T_0 in the LSBs
            write_hex(code_dir / "thresholds.hex", words, n_thr * acc_bits)
            ofmt = self.output_format()
            write_hex(code_dir / "codes.hex", [int(c) for c in codes_of(ofmt.values(), ofmt)], ofmt.bits)
        (ab, ae, asg), (wb, we, wsg) = operand_params(fa), operand_params(fw)
        params = dict(MW=self.get_nodeattr("MW"), MH=self.get_nodeattr("MH"), PE=pe, SIMD=simd, A_BITS=ab, A_E=ae,
                      A_SIGNED=asg, W_BITS=wb, W_E=we, W_SIGNED=wsg, ACC_BITS=acc_bits,
                      NO_ACT=self.get_nodeattr("noActivation"), N_THRES=max(n_thr, 1),
                      O_BITS=self.get_output_datatype().bitwidth(), DYN=dyn,
                      VECS=self.dynamic_groups()[1] if dyn else 1)
        files = dict(WEIGHT_FILE="weights.hex", THRESH_FILE="thresholds.hex", CODE_FILE="codes.hex")
        plist = [f".{k}({v})" for k, v in params.items()]
        plist += [f'.{k}("{(code_dir / v).as_posix()}")' for k, v in files.items()]
        if dyn:
            w1 = self.get_instream_width(1)
            ports = (f",\n    input  wire [{w1}-1:0] in1_V_TDATA,\n    input  wire            in1_V_TVALID,\n"
                     "    output wire            in1_V_TREADY")
            conn = ".in1_V_TDATA(in1_V_TDATA), .in1_V_TVALID(in1_V_TVALID), .in1_V_TREADY(in1_V_TREADY)"
        else:
            ports, conn = "", f".in1_V_TDATA({pe * fw.bits}'d0), .in1_V_TVALID(1'b0), .in1_V_TREADY()"
        self.write_top(code_dir, "minifloat_mvau_wrapper.v", plist,
                       {"$IW$": self.get_instream_width(), "$OW$": self.get_outstream_width(),
                        "$IN1_PORTS$": ports, "$IN1_CONN$": conn})

    def _run_rtlsim(self, x, w=None, stalls=True):
        """Stream x (and, for dynamic_input, the matrices w) through the Icarus testbench; ``stalls`` = random valid
        gaps on every input stream and random backpressure on the output (``False``: full rate, for cycle counts)."""
        fa = self.input_format()
        streams = [(pack_words(codes_of(x, fa).reshape(-1, self.get_nodeattr("SIMD")), fa.bits),
                    self.get_instream_width())]
        if self.get_nodeattr("dynamic_input"):
            streams.append((self.dynamic_matrix_words(w), self.get_instream_width(1)))
        data, cycles = self.run_icarus(streams, self.get_number_output_values(), gaps=stalls)
        self.set_nodeattr("cycles_rtlsim", cycles)
        odt_bits = self.get_output_datatype().bitwidth()
        pe = self.get_nodeattr("PE")
        if self.get_nodeattr("noActivation"):
            vals = unpack_words(data, odt_bits, pe, signed=True)
        else:
            ofmt = self.output_format()
            codes = unpack_words(data, odt_bits, pe).astype(np.int64)
            vals = ofmt.decode(codes)
        return vals.reshape(self.get_normal_output_shape())

    def execute_node(self, context, graph):
        if self.get_nodeattr("exec_mode") == "rtlsim":
            node = self.onnx_node
            w = context[node.input[1]] if self.get_nodeattr("dynamic_input") else None
            out = self._run_rtlsim(context[node.input[0]], w)
            context[node.output[0]] = out
        else:
            MinifloatMVAU.execute_node(self, context, graph)
