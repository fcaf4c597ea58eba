"""MinifloatLayerNorm_rtl: Verilog backend (custom_ops/rtl/minifloat_layernorm.v + mf_decode / mf_threshold of the
MAC library): sequential division and square root per row; the output requantizer's thresholds are memory files."""

from compiler.numerics import IntFormat
from custom_ops.minifloat_layernorm import MinifloatLayerNorm
from custom_ops.rtl.minifloat_thresholding_rtl import signs_mask, write_threshold_memories
from custom_ops.rtl.stream_backend import RTLStreamBackend
from custom_ops.stream_codecs import CodesCodec


class MinifloatLayerNorm_rtl(CodesCodec, RTLStreamBackend, MinifloatLayerNorm):
    CORE = "minifloat_layernorm"

    def get_exp_cycles(self):
        """Per row: D / PE words in, the division (2(R + e) + 2 cycles, e <= V'/2 bits) and square root (R + 3),
        D / PE words out."""
        w = self.widths()
        return self.rows() * (2 * self.folds() + 2 * self.get_nodeattr("R") + w["V"] + w["Q"] + 4)

    def hdl_params(self, model, code_dir):
        w, fi, fo = self.widths(), self.input_format(), self.output_format()
        d = self.get_nodeattr("NumChannels")
        files = write_threshold_memories(code_dir, self.thresholds(model), w["Z"] + 1, fo)
        integer = isinstance(fi, IntFormat)
        return dict(D=d, PE=self.get_nodeattr("PE"), BITS=fi.bits, E=0 if integer else fi.exponent_bits,
                    SIGNED=int(fi.signed) if integer else 1, S1W=w["S1"], S2W=w["S2"], VW=w["V"], NW=w["N"],
                    QW=w["Q"], ZW=w["Z"], R=self.get_nodeattr("R"), EPS=f"{w['V']}'d{self.get_nodeattr('epsTerm')}",
                    N_THRES=self.n_thresholds(), O_BITS=fo.bits, SIGNS=signs_mask(self.signs(), d), **files)
