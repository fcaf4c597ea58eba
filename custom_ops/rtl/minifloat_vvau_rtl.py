"""MinifloatVVAU_rtl: Verilog backend of MinifloatVVAU (custom_ops/rtl/minifloat_vvau.v + the MAC library).

The (K, C) per-channel weights, the thresholds and the output code table are memory files; one input stream.
"""

import numpy as np

from compiler.errors import UnsupportedNodeError
from custom_ops.codegen import codes_of, pack_words, write_hex
from custom_ops.mac import operand_params
from custom_ops.minifloat_vvau import MinifloatVVAU
from custom_ops.rtl.stream_backend import RTLStreamBackend, verilog_path
from custom_ops.stream_codecs import VVAUCodec


class MinifloatVVAU_rtl(VVAUCodec, RTLStreamBackend, MinifloatVVAU):
    """Verilog MinifloatVVAU: embedded per-channel weights, an NF-deep accumulator memory."""

    CORE = "minifloat_vvau"

    def hdl_params(self, model, code_dir):
        pe, simd = self.get_nodeattr("PE"), self.get_nodeattr("SIMD")
        fa, fw = self.input_format(), self.weight_format()
        write_hex(code_dir / "weights.hex", self.weight_rom_words(model), pe * simd * fw.bits)
        acc_bits, n_thr, c = self.acc_bits(), self.n_thresholds(), self.get_nodeattr("MH")
        if n_thr:
            thr = self.threshold_ints(model)
            if thr.shape != (c, n_thr):
                raise UnsupportedNodeError(f"{self.onnx_node.name}: thresholds have shape {thr.shape}, expected "
                                           f"({c}, {n_thr}) for output {self.get_nodeattr('outputDataType')}")
            write_hex(code_dir / "thresholds.hex", pack_words(np.asarray(thr, dtype=object), acc_bits),
                      n_thr * acc_bits)
            ofmt = self.output_format()
            write_hex(code_dir / "codes.hex", [int(v) for v in codes_of(ofmt.values(), ofmt)], ofmt.bits)
        (ab, ae, asg), (wb, we, wsg) = operand_params(fa), operand_params(fw)
        params = dict(K=self.get_nodeattr("MW"), C=c, PE=pe, SIMD=simd, A_BITS=ab, A_E=ae, A_SIGNED=asg,
                      W_BITS=wb, W_E=we, W_SIGNED=wsg, ACC_BITS=acc_bits, NO_ACT=self.get_nodeattr("noActivation"),
                      N_THRES=max(n_thr, 1), O_BITS=self.get_output_datatype().bitwidth())
        for key, name in (("WEIGHT_FILE", "weights.hex"), ("THRESH_FILE", "thresholds.hex"),
                          ("CODE_FILE", "codes.hex")):
            params[key] = verilog_path(code_dir / name)
        return params
