"""MinifloatMVAU_rtl: Verilog backend of MinifloatMVAU (custom_ops/rtl/minifloat_mvau.v + the MAC library).

The weights (when embedded), thresholds and the output code table are memory files. With ``dynamic_input = 1`` the
top has a second AXI stream ``in1_V`` (the matrices, FINN's MVAU mem_mode "dynamic" word order); with ``mem_mode =
"external"`` ``in1_V`` carries each step's weight word (``EXT = 1``, PE*SIMD codes, FINN's external weight stream);
otherwise the core's in1 is tied off.
"""

import numpy as np

from compiler.errors import UnsupportedNodeError
from custom_ops.codegen import codes_of, pack_words, write_hex
from custom_ops.mac import operand_params
from custom_ops.minifloat_mvau import MinifloatMVAU
from custom_ops.rtl.stream_backend import RTLStreamBackend, verilog_path
from custom_ops.stream_codecs import MVAUCodec


class MinifloatMVAU_rtl(MVAUCodec, RTLStreamBackend, MinifloatMVAU):
    """Verilog MinifloatMVAU: embedded weights, a matrix stream in1 (dynamic_input = 1) or a weight stream in1
    (mem_mode "external")."""

    CORE = "minifloat_mvau"

    def support_files(self):
        return ["mf_requant_lib.v"]  # mf_rom: the block RAM weight ROM (W_BLOCK)

    def hdl_params(self, model, code_dir):
        pe, simd = self.get_nodeattr("PE"), self.get_nodeattr("SIMD")
        fa, fw = self.input_format(), self.weight_format()
        source = self.weight_source()
        dyn = int(source == "dynamic")
        if source == "embedded":
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
                      O_BITS=self.get_output_datatype().bitwidth(), DYN=dyn, EXT=int(source == "external"),
                      VECS=self.dynamic_groups()[1] if dyn else 1, USE_DSP=self.get_nodeattr("use_dsp"),
                      W_BLOCK=int(source == "embedded" and self._weight_storage() == "bram"), **self.mac_plan_params())
        for key, name in (("WEIGHT_FILE", "weights.hex"), ("THRESH_FILE", "thresholds.hex"),
                          ("CODE_FILE", "codes.hex")):
            params[key] = verilog_path(code_dir / name)
        return params

    def hdl_in1(self, model, code_dir):
        if self.weight_source() != "embedded":
            return self.in1_stream()
        return self.in1_tied(self.get_nodeattr("PE") * self.weight_format().bits)
