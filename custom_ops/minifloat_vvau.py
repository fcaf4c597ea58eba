"""MinifloatVVAU: vector-vector activation unit (FINN's VVAU role) for depthwise convolutions, minifloat and integer.

Arithmetic contract (bit exact; the RTL backend implements exactly this):

* ``x`` (..., K*C) holds sliding windows in ``MinifloatConvInpGen``'s order (kernel position k = kh*KW + kw outer,
  channel c inner) of ``inputDataType`` values; ``W`` (K, C) the per-channel weights of ``weightDataType``.
  In the integer domain ``acc[..., c] = sum_k x_int[..., k*C + c] * w_int[k, c]`` (exact): every output channel
  multiplies only its own channel's K window values. ``MW`` = K (the dot-product length), ``MH`` = C.
* ``noActivation`` / thresholds / ``outputDataType`` as ``MinifloatMVAU`` (T (C or 1, N) in the accumulator domain).

Folding: PE channels and SIMD kernel positions per cycle, with ``SIMD = 1`` or ``PE = C``: then an input word holds
SIMD*PE consecutive window codes (lane i*PE + p = kernel position sf*SIMD + i, channel nf*PE + p), so the unit eats
the sliding-window stream in its own order, one word per cycle. Word j = sf*NF + nf (NF = C/PE, SF = K/SIMD); the
weight ROM word j holds W[sf*SIMD + i, nf*PE + p] at the same lanes. With NF > 1 the PE accumulators of the NF
channel groups live in an NF-deep accumulator memory; a group's result leaves (PE per output word) after its last
kernel step. Cycles per window: NF*SF, as FINN's VVAU.
"""

import math

import numpy as np

from compiler.errors import UnsupportedNodeError
from custom_ops.capabilities import divisors
from custom_ops.codegen import codes_of, pack_words
from custom_ops.minifloat_mvau import MinifloatMVAU, to_int_domain
from custom_ops.threshold_cost import threshold_stage_ffs


def depthwise_accumulate(x_int, w_int):
    """acc[..., c] = sum_k x_int[..., k*C + c] * w_int[k, c], exact (int64, or Python ints in object arrays)."""
    k, c = w_int.shape
    windows = np.asarray(x_int).reshape(x_int.shape[:-1] + (k, c))
    if windows.dtype == object or w_int.dtype == object:
        return (windows.astype(object) * w_int.astype(object)).sum(axis=-2)
    return (windows * w_int).sum(axis=-2)


class MinifloatVVAU(MinifloatMVAU):
    """Depthwise (per-channel) dot products with exact minifloat/integer MACs and threshold requantization."""

    def folding_space(self):
        """(PE | C, SIMD = 1) and (PE = C, SIMD | K): the foldings whose words are contiguous in the window stream."""
        k, c = self.get_nodeattr("MW"), self.get_nodeattr("MH")
        space = [{"PE": pe, "SIMD": 1} for pe in divisors(c)]
        return space + [{"PE": c, "SIMD": simd} for simd in divisors(k) if simd > 1]

    def dsp_capable(self):
        """The VVAU's cores multiply in LUTs only (no DSP48 packing), so ``use_dsp`` stays 0."""
        return False

    def weight_memory_bits(self):
        return self._weight_bits_total()

    def external_weights_capable(self):
        """The depthwise weights stay in the op's ROM (they are small: K x C)."""
        return False

    def folds(self):
        nf, sf = super().folds()
        if nf > 1 and self.get_nodeattr("SIMD") > 1:
            raise UnsupportedNodeError(f"{self.onnx_node.name}: SIMD={self.get_nodeattr('SIMD')} needs PE = "
                                       f"{self.get_nodeattr('MH')} channels (PE={self.get_nodeattr('PE')})")
        return nf, sf

    # --- shapes and streams ---------------------------------------------------------------------------------------
    def get_normal_input_shape(self, ind=0):
        k, c = self.get_nodeattr("MW"), self.get_nodeattr("MH")
        if ind == 0:
            return tuple(list(self.get_nodeattr("numInputVectors")) + [k * c])
        if ind == 1:
            return (k, c)
        return (c, self.n_thresholds())

    def get_folded_input_shape(self, ind=0):
        nf, sf = self.folds()
        lanes = self.get_nodeattr("SIMD") * self.get_nodeattr("PE")
        if ind == 0:
            return tuple(list(self.get_nodeattr("numInputVectors")) + [sf * nf, lanes])
        if ind == 1:
            return (1, sf * nf, lanes)
        raise UnsupportedNodeError(f"{self.onnx_node.name}: input {ind} (thresholds) is embedded, not streamed")

    def get_instream_width(self, ind=0):
        if ind == 0:
            return self.get_nodeattr("SIMD") * self.get_nodeattr("PE") * self.input_format().bits
        return 0

    def get_number_input_values(self, ind=0):
        nf, sf = self.folds()
        return int(np.prod(self.get_nodeattr("numInputVectors"))) * sf * nf if ind == 0 else 0

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["s_axis"] = [("in0_V", self.get_instream_width_padded(0))]
        return intf

    def verify_node(self):
        info = super().verify_node()
        if self.get_nodeattr("dynamic_input"):
            info.append("dynamic_input is not supported by MinifloatVVAU")
        return info

    # --- golden model ---------------------------------------------------------------------------------------------
    def accumulate(self, x_values, w_values):
        xi = to_int_domain(x_values, self.input_format())
        wi = to_int_domain(np.asarray(w_values).reshape(self.get_normal_input_shape(1)), self.weight_format())
        return depthwise_accumulate(xi, wi)

    def matrix_words(self, w_values):
        """ROM words of W (K, C): word sf*NF + nf packs W[sf*SIMD + i, nf*PE + p] codes at lane i*PE + p."""
        nf, sf = self.folds()
        pe, simd = self.get_nodeattr("PE"), self.get_nodeattr("SIMD")
        fw = self.weight_format()
        codes = codes_of(np.asarray(w_values).reshape(self.get_normal_input_shape(1)), fw)
        blocks = codes.reshape(sf, simd, nf, pe).transpose(0, 2, 1, 3).reshape(sf * nf, simd * pe)
        return pack_words(blocks, fw.bits)

    # --- estimates ------------------------------------------------------------------------------------------------
    def resource_features(self):
        """The MVAU's features without its input-vector buffer (no window is reused); the NF-deep accumulator
        memory's read multiplexer (NF > 1) is priced like LUTRAM next to the weight ROM's."""
        feats = super().resource_features()
        feats["ibuf_bits"] = 0
        nf, _ = self.folds()
        if nf > 1:
            feats["weight_rom_bits"] += nf * self.get_nodeattr("PE") * self.acc_bits() / 64
        return feats

    def ff_estimation(self, fpgapart=None):
        """The accumulators (NF*PE, Yosys keeps them in registers) and the PE results, output codes, counters, the
        threshold stage's registers. Yosys synth_xilinx of E3M2 K=9 nodes (22-bit accumulators, 62 thresholds),
        FFs / estimate: C=8 PE=1 292 / 219, C=8 PE=2 166 / 246, C=4 PE=4 SIMD=9 228 / 210; LUTs (``lut_estimation``)
        2,200 / 1,860, 2,660 / 3,355, 6,570 / 5,720."""
        pe = self.get_nodeattr("PE")
        nf, sf = self.folds()
        ff = (nf + 1) * pe * self.acc_bits() + pe * self.get_output_datatype().bitwidth()
        ff += sum(max(1, math.ceil(math.log2(n))) for n in (nf, sf)) + 8
        if self.n_thresholds():
            ff += threshold_stage_ffs(self._threshold_rows_per_lane(), self.n_thresholds(), self.acc_bits())
        return int(ff)
