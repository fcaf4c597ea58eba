"""MinifloatLayerNorm: LayerNorm over the channels of a minifloat/integer code stream, exact statistics, a defined
reciprocal square root, affine and output quantization folded into per-channel integer thresholds.

Arithmetic contract (bit exact). Input codes of ``inputDataType`` with integers ``a_i`` (the format's integer
domain, value = a_i * u, u = s_in * 2**lsb_exponent), D = ``NumChannels`` per row (token):

    S1 = sum a_i,   S2 = sum a_i^2,   n_i = D * a_i - S1,   V = D * S2 - S1^2          (exact integers)
    V' = V + epsTerm          (epsTerm = max(1, round(eps * D^2 / u^2)): LayerNorm's epsilon in the same units)
    e  = bitlength(V') // 2                                            (so that r keeps R significant bits)
    r  = floor(2^(R+e) / sqrt(V')) = isqrt(floor(2^(2(R+e)) / V'))                      (exact integers)
    z_i = floor(n_i * r / 2^e)                   (arithmetic shift; ~ 2^R * (x_i - mean) / sqrt(var + eps))
    out_i = out_values[#{k : sign_i * z_i >= T[i, k]}]

``T`` (D, N) and ``channel_signs`` are the output quantizer's exact thresholds for
``fmt.round((gamma_i * z_i / 2^R + beta_i) / s_out)`` (passes/thresholds.py ``requant_thresholds``: the format's
own tie rule, negative gamma via the sign). The only approximations against the float LayerNorm are r (R + 1..2
significant bits of 1/sqrt, whatever the magnitude of V') with the truncating shift, and the epsilon rounding;
``R`` = 16 by default. |z_i| < 2^R * sqrt(D), so z fits R + log2(D)/2 + 2 bits.

Hardware: per row, pass 1 reads D / PE words into a row buffer and accumulates S1, S2; then V', the division and
the integer square root (sequential, one bit per cycle); pass 2 forms z_i and compares with the thresholds.
"""

from math import isqrt

import numpy as np
from qonnx.core.datatype import DataType

from compiler.errors import UnsupportedNodeError
from compiler.qonnx_formats import format_from_datatype
from custom_ops.channel_stream import ChannelStreamOp
from custom_ops.general.common import batch_shape, exact_ints


def rsqrt_fixed(v, r_bits):
    """(r, e) with e = bitlength(v) // 2 and r = floor(2^(R+e) / sqrt(v)), exactly, for an integer v >= 1."""
    e = int(v).bit_length() // 2
    return isqrt((1 << (2 * (r_bits + e))) // int(v)), e


def layernorm_widths(d, max_int, eps_term, r_bits):
    """Signed bit widths of the datapath: S1, S2, V', n, r (Q), z (|z| < 2^R sqrt(D) + 1) and the a_i (A)."""
    return {"A": int(max_int).bit_length() + 1, "S1": int(d * max_int).bit_length() + 1,
            "S2": int(d * max_int * max_int).bit_length() + 1,
            "V": int(d * d * max_int * max_int + eps_term).bit_length() + 1, "N": int(2 * d * max_int).bit_length() + 1,
            "Q": r_bits + 3, "Z": r_bits + (int(d).bit_length() + 1) // 2 + 2}


def z_range(d, r_bits):
    """Range of z for thresholds clipping: [-2^(Z-1), 2^(Z-1) - 1]."""
    zb = layernorm_widths(d, 1, 1, r_bits)["Z"]
    return -(1 << (zb - 1)), (1 << (zb - 1)) - 1


class MinifloatLayerNorm(ChannelStreamOp):
    THRESHOLD_INPUT = 1

    def op_attrs(self):
        return {
            "inputDataType": ("s", True, ""),
            "channel_signs": ("ints", False, []),
            "R": ("i", False, 16),
            "epsTerm": ("i", True, 1),
        }

    def input_format(self):
        return format_from_datatype(self.get_nodeattr("inputDataType"), self.onnx_node.name)

    def get_input_datatype(self, ind=0):
        return DataType[self.get_nodeattr("inputDataType")]

    def get_instream_width(self, ind=0):
        return 0 if ind else self.get_nodeattr("PE") * self.input_format().bits

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["s_axis"] = [("in0_V", self.get_instream_width_padded(0))]
        return intf

    # --- widths of the datapath (shared by the conversion pass and the HLS template) --------------------------
    def widths(self):
        return layernorm_widths(self.get_nodeattr("NumChannels"), self.input_format().max_int,
                                self.get_nodeattr("epsTerm"), self.get_nodeattr("R"))

    def rows(self):
        return int(np.prod(self.get_nodeattr("numInputVectors")))

    def get_exp_cycles(self):
        """Per row: D / PE words in (statistics), R + 1 cycles of square root, D / PE words out (the row buffer
        is not double-buffered)."""
        return self.rows() * (2 * self.folds() + self.get_nodeattr("R") + 8)

    def verify_node(self):
        return [f"{self.onnx_node.name}: LayerNorm over {self.get_nodeattr('NumChannels')} channels, "
                f"R={self.get_nodeattr('R')}, epsTerm={self.get_nodeattr('epsTerm')}"]

    def lut_estimation(self, fpgapart=None):
        """Analytic: PE squarers and adders for S1/S2, a sequential divider and square root (~3 LUT per bit of V'
        and of the quotient), PE multipliers n x r in LUTs, the row buffer (LUTRAM, 64 bits per LUT) and the PE
        threshold stages of z + 1 bit thresholds (``custom_ops/threshold_cost.py``, Yosys-fitted)."""
        w, pe = self.widths(), self.get_nodeattr("PE")
        ib = self.input_format().bits
        stats = pe * (ib * ib + w["S2"] + w["S1"])
        serial = 3 * (w["V"] + w["Q"])
        mult = pe * w["N"] * w["Q"] // 2
        row_buffer = self.get_nodeattr("NumChannels") * ib / 64
        return int(round(stats + serial + mult + row_buffer + self.threshold_stage_luts(w["Z"] + 1)))

    def ff_estimation(self, fpgapart=None):
        w = self.widths()
        return int(w["S1"] + w["S2"] + 2 * w["V"] + w["Q"] + self.get_nodeattr("PE") * w["Z"] + 32
                   + self.threshold_stage_ffs(w["Z"] + 1))

    def get_op_and_param_counts(self):
        return {"param_threshold_layernorm": self.get_nodeattr("NumChannels") * self.n_thresholds()}

    # --- golden model -------------------------------------------------------------------------------------------
    def normalized(self, x):
        """z (..., D), the contract's z_i: int64 when V' and n_i r fit 62 bits, else a numpy object array of Python
        ints. r and e are computed once per distinct V'."""
        fmt, r_bits, eps = self.input_format(), self.get_nodeattr("R"), int(self.get_nodeattr("epsTerm"))
        a = exact_ints(np.asarray(x), fmt, self.onnx_node.name)
        d = a.shape[-1]
        if d != self.get_nodeattr("NumChannels"):
            raise UnsupportedNodeError(f"{self.onnx_node.name}: {d} channels, expected "
                                       f"{self.get_nodeattr('NumChannels')}")
        m = int(fmt.max_int)  # |a_i| <= m, so V' <= D^2 m^2 + epsTerm and |n_i r| <= 2 D m 2^(R+1)
        kind = np.int64 if max(d * d * m * m + eps, 2 * d * m << (r_bits + 1)) < 2**62 else object
        a = a.astype(kind)
        s1 = a.sum(axis=-1, keepdims=True)
        s2 = (a * a).sum(axis=-1, keepdims=True)
        v = d * s2 - s1 * s1 + eps
        distinct, where = np.unique(v, return_inverse=True)
        pairs = [rsqrt_fixed(t, r_bits) for t in distinct]
        r = np.array([p[0] for p in pairs], dtype=kind)[where].reshape(v.shape)
        e = np.array([p[1] for p in pairs], dtype=kind)[where].reshape(v.shape)
        return ((d * a - s1) * r) >> e  # >> is the floor division by 2^e (Python ints, numpy's arithmetic shift)

    def execute_python(self, x, thresholds):
        z = self.normalized(x)
        t = np.asarray(thresholds)
        kind = np.int64 if z.dtype == np.int64 and t.dtype.kind == "i" else object
        signs = np.asarray(self.signs() or [1] * self.get_nodeattr("NumChannels"), dtype=kind)
        u = z * signs
        counts = (u[..., None] >= t.astype(kind)).sum(axis=-1).astype(np.int64)
        return self.output_format().values()[counts]

    def execute_node(self, context, graph):
        node = self.onnx_node
        x = np.asarray(context[node.input[0]])
        shape = batch_shape(x, self.get_normal_input_shape(0))
        if shape is None:
            raise UnsupportedNodeError(f"{node.name}: input has shape {x.shape}, expected "
                                       f"{self.get_normal_input_shape(0)}")
        x = x.reshape(shape)
        context[node.output[0]] = self.execute_python(x, self.thresholds(context))
