"""MinifloatLayerNorm_rtl: Verilog backend (custom_ops/rtl/minifloat_layernorm.v + mf_decode / mf_threshold of the
MAC library): rows overlapped, ``rsqrtUnits`` reciprocal-square-root units round robin, ``row_buffers()`` row buffer
slots; the output requantizer's thresholds are memory files (none with ``noActivation = 1``). Its cycles are the
op's ``get_exp_cycles`` (custom_ops/layernorm_schedule.py)."""

from compiler.numerics import IntFormat
from custom_ops.minifloat_layernorm import MinifloatLayerNorm
from custom_ops.rtl.minifloat_thresholding_rtl import signs_mask, write_threshold_memories
from custom_ops.rtl.stream_backend import RTLStreamBackend
from custom_ops.stream_codecs import CodesCodec


class MinifloatLayerNorm_rtl(CodesCodec, RTLStreamBackend, MinifloatLayerNorm):
    CORE = "minifloat_layernorm"

    def hdl_params(self, model, code_dir):
        w, fi = self.widths(), self.input_format()
        d = self.get_nodeattr("NumChannels")
        integer = isinstance(fi, IntFormat)
        params = dict(D=d, PE=self.get_nodeattr("PE"), BITS=fi.bits, E=0 if integer else fi.exponent_bits,
                      SIGNED=int(fi.signed) if integer else 1, S1W=w["S1"], S2W=w["S2"], VW=w["V"], NW=w["N"],
                      QW=w["Q"], ZW=w["Z"], R=self.get_nodeattr("R"),
                      EPS=f"{w['V']}'d{self.get_nodeattr('epsTerm')}", K=self.rsqrt_units(), NB=self.row_buffers(),
                      O_BITS=self.output_lane_bits())
        if self.accumulator_output():
            return dict(params, NO_ACT=1, N_THRES=1)
        files = write_threshold_memories(code_dir, self.thresholds(model), w["Z"] + 1, self.output_format())
        return dict(params, NO_ACT=0, N_THRES=self.n_thresholds(), SIGNS=signs_mask(self.signs(), d), **files)
