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

``noActivation = 1`` (accumulator output, FINN's name): no thresholds input and no channel signs; the node outputs
z_i itself, signed integers of ``outputDataType`` (an INTn with n >= ``widths()["Z"]``), for a standalone
requantizer after it (per-channel gamma/beta).

Hardware (RTL, custom_ops/rtl/minifloat_layernorm.v): rows overlap. Stage A reads a row (D / PE words) into a row
buffer slot and accumulates S1, S2; a shared pipeline forms V' and e; ``rsqrtUnits`` = K units, used round robin,
each divides two quotient bits per cycle and takes the square root digit by digit (R + 2 cycles a row); stage C
forms z_i, compares with the thresholds (or outputs z_i) and writes the row out. A row costs about
``max(D / PE, (R + 4) / K)`` cycles in steady state (custom_ops/layernorm_schedule.py models it); the row buffer
has as many slots as rows are in flight (``row_buffers``). The folding space is every (PE | D, K) pair with K up
to the units that stop bounding the row at that PE.
"""

from math import isqrt

import numpy as np

from compiler.errors import UnsupportedNodeError
from compiler.qonnx_formats import format_from_datatype, qonnx_datatype
from custom_ops.capabilities import divisors
from custom_ops.channel_stream import ChannelStreamOp
from custom_ops.general.common import batch_shape, exact_ints
from custom_ops.layernorm_cost import layernorm_dsps, layernorm_ffs, layernorm_luts_with_dsps
from custom_ops.layernorm_schedule import row_buffers, rtl_schedule, useful_units


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
            # 1: output z itself (outputDataType INTn), no thresholds (a standalone requantizer follows)
            "noActivation": ("i", False, 0, {0, 1}),
            # K reciprocal-square-root units of the RTL, used round robin
            "rsqrtUnits": ("i", False, 1),
        }

    def input_format(self):
        return format_from_datatype(self.get_nodeattr("inputDataType"), self.onnx_node.name)

    def get_input_datatype(self, ind=0):
        return qonnx_datatype(self.get_nodeattr("inputDataType"))

    def get_instream_width(self, ind=0):
        return 0 if ind else self.get_nodeattr("PE") * self.input_format().bits

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["s_axis"] = [("in0_V", self.get_instream_width_padded(0))]
        return intf

    # --- output modes ---------------------------------------------------------------------------------------------
    def accumulator_output(self):
        """True when the node outputs z (``noActivation = 1``); checks that ``outputDataType`` holds every z."""
        if not self.get_nodeattr("noActivation"):
            return False
        dt = self.get_output_datatype()
        zb = self.widths()["Z"]
        if not (dt.is_integer() and dt.signed() and dt.bitwidth() >= zb):
            raise UnsupportedNodeError(f"{self.onnx_node.name}: noActivation=1 outputs z, a signed integer of at "
                                       f"least {zb} bits; outputDataType is {dt.name}")
        return True

    def threshold_input(self):
        return None if self.get_nodeattr("noActivation") else super().threshold_input()

    def n_thresholds(self):
        return 0 if self.get_nodeattr("noActivation") else super().n_thresholds()

    def output_lane_bits(self):
        """Bits per output element on the stream: the output code, or z's INTn."""
        return self.get_output_datatype().bitwidth()

    def get_outstream_width(self, ind=0):
        return self.get_nodeattr("PE") * self.output_lane_bits()

    # --- widths of the datapath (shared by the conversion pass and the HLS template) --------------------------
    def widths(self):
        return layernorm_widths(self.get_nodeattr("NumChannels"), self.input_format().max_int,
                                self.get_nodeattr("epsTerm"), self.get_nodeattr("R"))

    def rows(self):
        return int(np.prod(self.get_nodeattr("numInputVectors")))

    # --- folding and timing (the RTL schedule, custom_ops/layernorm_schedule.py) ---------------------------------
    def rsqrt_units(self):
        k = int(self.get_nodeattr("rsqrtUnits"))
        if k < 1:
            raise UnsupportedNodeError(f"{self.onnx_node.name}: rsqrtUnits={k}, must be >= 1")
        return k

    def folding_space(self):
        """Every (PE | D, K) pair worth having: per PE, the K from 1 up to the units that stop bounding the row
        (``useful_units``), each kept only when it makes this node's frame faster than the smaller K before it."""
        d, r, rows = self.get_nodeattr("NumChannels"), self.get_nodeattr("R"), self.rows()
        space = []
        for pe in divisors(d):
            fastest = None
            for k in range(1, useful_units(d // pe, r) + 1):
                cycles = rtl_schedule(rows, d // pe, k, r, row_buffers(d // pe, k, r))["cycles"]
                if fastest is None or cycles < fastest:
                    space.append({"PE": pe, "rsqrtUnits": k})
                    fastest = cycles
        return space

    def row_buffers(self):
        """Row buffer slots of the RTL: the rows in flight at full rate (``layernorm_schedule.row_buffers``)."""
        return row_buffers(self.folds(), self.rsqrt_units(), self.get_nodeattr("R"))

    def get_exp_cycles(self):
        """The RTL's cycles for one frame at full-rate streams: the row recurrence of
        ``layernorm_schedule.rtl_schedule`` (about max(D / PE, (R + 4) / K) per row plus the pipeline's fill)."""
        return rtl_schedule(self.rows(), self.folds(), self.rsqrt_units(), self.get_nodeattr("R"),
                            self.row_buffers())["cycles"]

    def verify_node(self):
        mode = "outputs z" if self.get_nodeattr("noActivation") else "thresholds"
        return [f"{self.onnx_node.name}: LayerNorm over {self.get_nodeattr('NumChannels')} channels, "
                f"R={self.get_nodeattr('R')}, epsTerm={self.get_nodeattr('epsTerm')}, {mode}"]

    # --- estimates (layernorm_cost.py) ------------------------------------------------------------------------------
    def lut_estimation(self, fpgapart=None):
        """``layernorm_cost.layernorm_luts_with_dsps`` (Yosys-fitted, the multipliers in DSP48s as synthesis with
        DSP inference maps them; ``layernorm_luts`` is the LUT-only figure of ``-nodsp``) plus the PE threshold stages
        of z + 1 bit thresholds (``custom_ops/threshold_cost.py``) when the node requantizes."""
        thr = 0 if self.get_nodeattr("noActivation") else self.threshold_stage_luts(self.widths()["Z"] + 1)
        return int(round(layernorm_luts_with_dsps(self.cost_shape()) + thr))

    def dsp_estimation(self, fpgapart=None):
        """The S1^2 multiplier and one per lane (``layernorm_cost.layernorm_dsps``)."""
        return layernorm_dsps(self.cost_shape())

    def ff_estimation(self, fpgapart=None):
        thr = 0 if self.get_nodeattr("noActivation") else self.threshold_stage_ffs(self.widths()["Z"] + 1)
        return int(round(layernorm_ffs(self.cost_shape()) + thr))

    def cost_shape(self):
        """What the cost model needs: widths, folding, units, buffers and the output lanes."""
        return dict(self.widths(), D=self.get_nodeattr("NumChannels"), PE=self.get_nodeattr("PE"),
                    K=self.rsqrt_units(), NB=self.row_buffers(), R=self.get_nodeattr("R"),
                    BITS=self.input_format().bits, OB=self.output_lane_bits(),
                    NO_ACT=int(self.get_nodeattr("noActivation")))

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
        if self.accumulator_output():
            return z.astype(np.int64)
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
        t = None if self.threshold_input() is None else self.thresholds(context)
        context[node.output[0]] = self.execute_python(x, t)
