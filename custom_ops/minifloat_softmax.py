"""MinifloatSoftmax: softmax over rows of <= 8-bit codes with an exact, defined integer arithmetic (FINN HWCustomOp).

Replaces the lowered graph's float island ``Dequantize(x, s_in) -> Softmax(axis=-1) -> QuantizeToFormat(s_out, F)``
(attention). Input ``x`` (..., N) holds values of ``inputDataType`` (codes ``c`` on the stream), output values of
``outputDataType`` = ``F``. ``NumChannels`` is the row length N, ``PE`` elements per stream word.

Arithmetic contract (bit exact; every quantity below is an integer, the tables are functions of the attributes):

1. Exp table (``exp_table``), one entry per input code ``c`` with value ``v(c)``: ``t = (s_in v(c) - x_ref) log2(e)``
   in float64 with ``x_ref = max_c s_in v(c)`` (so ``t <= 0``), ``L = floor(t)``, ``M = round_half_even(2^(P-1) *
   2^(t - L))`` (``M == 2^P`` renormalises to ``2^(P-1)``, ``L + 1``); entry = (mantissa ``M_c`` in
   ``[2^(P-1), 2^P)``, shift ``h_c = -L >= 0``): ``M_c 2^(-h_c-P+1) ~ exp(s_in v(c) - x_ref)`` to P bits
   (``mantissaBits``).
2. Row alignment: ``h_min = min_i h_{c_i}`` over the row (the row maximum's shift; the table is monotonic in value),
   ``e_i = floor(M_{c_i} * 2^G / 2^(h_{c_i} - h_min))`` with ``G = alignBits`` (a right shift). When ``G`` is at least
   the table's shift range (``exact_alignment()``) nothing is truncated, ``e_i / S`` does not depend on ``h_min`` and
   the hardware skips the max search (two passes over the row instead of three).
3. ``S = sum_i e_i`` (exact; ``S >= 2^(P-1+G) > 0``).
4. Output: ``out_i = F.round(e_i / (S s_out))`` evaluated exactly with ``F``'s own tie policy
   (``compiler.numerics.tie_rounds_up``), i.e. with midpoints ``m_k`` of ``F``'s values and the dyadic rationals
   ``t_k = s_out m_k = num_k / 2^D``: ``out_i = values(F)[A + #{k : e_i 2^D >= num_k S + b_k}]``, ``b_k = 0`` when a
   tie at ``m_k`` rounds up, ``1`` when it rounds down. As ``e_i`` is an integer this is ``e_i >= theta_k`` with
   the row thresholds ``theta_k = ceil((num_k S + b_k) / 2^D)`` (``sum_bits + 1`` wide: the comparators are as
   narrow as ``e_i``, the wide product is formed once per threshold and row). Midpoints with ``t_k < 0`` (or
   ``= 0``, tie up) are always passed (``A`` of them, ``threshold_offset``), those with ``t_k > 1`` (or ``= 1``, tie
   down) never (``e_i <= S``): only the remaining ``(num_k, b_k)`` are kept (``row_thresholds``).

So the op computes the softmax with ``exp`` replaced by a P-bit table and the row alignment truncated at G bits,
then rounds exactly; its difference to the float island is only the table / alignment precision.

Precision choice (measured; tests/test_softmax.py): on random rows vs the fp32 island, differing output codes
P/G = 8/8: 0.9-2.1 %, 12/12: 0.05-0.13 %, 16/16: 0.003-0.025 %, 20/20: 0 (every difference one code step at
P >= 12). On the trained zoo ViT (Fashion-MNIST, e3m2, 4 layers, 1,000 test images; its score shift ranges are
35-50, so G = 12 truncates): first-layer softmax codes differing 0.04 % (12/12), 0.003 % (16/16); accuracy of the
lowered graph 89.3 % with the float island, 89.2 % (12/12), 89.3 % (16/16, 8/8), 89.1 % (6/4); argmax agreement
99.6 % (12/12), 100 % (16/16). Default P = G = 12: e_i fits 24 bits and the comparators ~60 bits (int64 golden path);
16/16 pushes them beyond 64 bits.

Hardware. RTL (custom_ops/rtl/minifloat_softmax.v): rows overlap in three stages; A reads a row into one of three
row buffer slots (and finds ``h_min``; when the alignment is not exact a second pass over the slot sums ``e_i``,
merged into the read when exact), T computes the row thresholds ``theta_k`` with ``thresholdUnits`` = KU
multipliers in ``ceil(K / KU)`` cycles, C compares ``e_i`` with them (PE x K comparators) and emits the codes. A row
costs ``max(passes * N / PE, ceil(K / KU) + 1)`` cycles in steady state (custom_ops/softmax_schedule.py). HLS
(cppsim): the same passes one after the other per row, the thresholds with KU multipliers a cycle. The folding
space is every (PE | N, KU) pair with KU up to the multipliers that stop bounding the row at that PE.
"""

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np

from compiler.errors import UnsupportedNodeError
from compiler.numerics import as_fraction, tie_rounds_up
from compiler.qonnx_formats import format_from_datatype, qonnx_datatype
from custom_ops.capabilities import divisors
from custom_ops.channel_stream import ChannelStreamOp
from custom_ops.layernorm_cost import lutram_luts
from custom_ops.softmax_schedule import rtl_schedule, useful_units
from custom_ops.threshold_cost import VAR_COMPARE_LUT_PER_BIT


def code_values(fmt):
    """Value of every code 0 .. 2^bits - 1 (codes a narrow integer format excludes get the format's minimum)."""
    vals = []
    for c in range(2 ** fmt.bits):
        try:
            vals.append(float(fmt.decode(np.array([c]))[0]))
        except ValueError:
            vals.append(float(fmt.values()[0]))
    return vals


@lru_cache(maxsize=64)
def exp_table(in_name, in_scale, mantissa_bits):
    """(mantissas, shifts) per input code: step 1 of the contract."""
    fmt = format_from_datatype(in_name, "MinifloatSoftmax")
    p = int(mantissa_bits)
    xs = [float(np.float64(in_scale) * v) for v in code_values(fmt)]  # fp32 scale x few-bit value: exact in float64
    x_ref = max(xs)
    mants, shifts = [], []
    for x in xs:
        t = (x - x_ref) * math.log2(math.e)
        low = math.floor(t)
        m = round(math.ldexp(2.0 ** (t - low), p - 1))  # Python round: half to even
        if m == 2**p:
            m, low = 2 ** (p - 1), low + 1
        mants.append(int(m))
        shifts.append(int(-low))
    return tuple(mants), tuple(shifts)


@lru_cache(maxsize=64)
def softmax_thresholds(out_name, out_scale):
    """(num, bias, D, offset): step 4 of the contract (only thresholds that can decide an output)."""
    fmt = format_from_datatype(out_name, "MinifloatSoftmax")
    s = as_fraction(np.float32(out_scale))
    if s <= 0:
        raise UnsupportedNodeError(f"MinifloatSoftmax: output scale must be positive, got {float(s)}")
    mids, up = tie_rounds_up(fmt)
    offset, kept = 0, []
    for m, tie_up in zip(mids, up):
        t = s * m
        if t < 0 or (t == 0 and tie_up):
            offset += 1
        elif t > 1 or (t == 1 and not tie_up):
            continue
        else:
            kept.append((t, 0 if tie_up else 1))
    d = max([0] + [t.denominator.bit_length() - 1 for t, _ in kept])
    nums = [int(t * 2**d) for t, _ in kept]
    return tuple(nums), tuple(b for _, b in kept), d, offset


#: Yosys 0.23 ``synth_xilinx`` (xc7, DSPs inferred) of the RTL core for the flagship ViT's first softmax (E3M2,
#: N = 16, 64 rows, K = 31, P = G = 12, PE = 4): (thresholdUnits, LUT, FF, DSP). Each multiplier adds ~40 LUTs (its
#: rounding adder, numerator ROM and write enables), no FFs (the products are not registered) and 4 DSP48E1 (the
#: estimate counts 6: 35 x 29 bits as 17 x 24 tiles)
YOSYS_UNITS = ((1, 3680, 2012, 4), (8, 3935, 2012, 32), (31, 4916, 2012, 124))
#: LUTs per multiplier and bit of (cmp_bits + num_bits), fitted to the differences in ``YOSYS_UNITS``
UNIT_LUT_PER_BIT = 0.4


class MinifloatSoftmax(ChannelStreamOp):
    REQUANTIZER = "thresholds"  # per-row thresholds computed from the row sum (contract step 4)

    def op_attrs(self):
        return {
            "inputDataType": ("s", True, ""),
            "in_scale": ("f", True, 1.0),
            "out_scale": ("f", True, 1.0),
            "mantissaBits": ("i", False, 12),
            "alignBits": ("i", False, 12),
            # KU multipliers forming the row thresholds theta_k (ceil(K / KU) cycles a row)
            "thresholdUnits": ("i", False, 1),
        }

    # --- formats and tables --------------------------------------------------------------------------------------
    def input_format(self):
        fmt = format_from_datatype(self.get_nodeattr("inputDataType"), self.onnx_node.name)
        if fmt.bits > 8:
            raise UnsupportedNodeError(f"{self.onnx_node.name}: input {fmt.name} has {fmt.bits} bits; the exp table "
                                       "supports inputs of at most 8 bits")
        return fmt

    def get_input_datatype(self, ind=0):
        return qonnx_datatype(self.get_nodeattr("inputDataType"))

    def precision(self):
        p, g = self.get_nodeattr("mantissaBits"), self.get_nodeattr("alignBits")
        if not 2 <= p <= 24 or not 0 <= g <= 48:
            raise UnsupportedNodeError(f"{self.onnx_node.name}: mantissaBits={p}, alignBits={g}; supported "
                                       "2 <= mantissaBits <= 24, 0 <= alignBits <= 48")
        return p, g

    def exp_table(self):
        self.input_format()
        return exp_table(self.get_nodeattr("inputDataType"), float(np.float32(self.get_nodeattr("in_scale"))),
                         self.precision()[0])

    def row_thresholds(self):
        self.output_format()
        out_scale = float(np.float32(self.get_nodeattr("out_scale")))
        return softmax_thresholds(self.get_nodeattr("outputDataType"), out_scale)

    def shift_range(self):
        return max(self.exp_table()[1])

    def exact_alignment(self):
        return self.precision()[1] >= self.shift_range()

    # --- widths (hardware) ---------------------------------------------------------------------------------------
    def shift_bits(self):
        return max(1, self.shift_range().bit_length())

    def e_bits(self):
        p, g = self.precision()
        return p + g

    def sum_bits(self):
        return self.e_bits() + max(1, (self.get_nodeattr("NumChannels") - 1).bit_length())

    def num_bits(self):
        nums, _, d, _ = self.row_thresholds()
        return max([d + 2] + [n.bit_length() + 1 for n in nums])

    def cmp_bits(self):
        """Width of the products num_k S + b_k + 2^D - 1 (< 2^D (S + 1) + 1)."""
        return self.sum_bits() + self.row_thresholds()[2] + 2

    def theta_bits(self):
        """Width of the row thresholds theta_k <= S + 1 (the comparators)."""
        return self.sum_bits() + 1

    def get_instream_width(self, ind=0):
        return self.get_nodeattr("PE") * self.input_format().bits

    def verify_node(self):
        p, g = self.precision()
        return [f"{self.onnx_node.name}: softmax rows of {self.get_nodeattr('NumChannels')}, P={p}, G={g}, "
                f"{len(self.row_thresholds()[0])} row thresholds"]

    # --- hardware parameters (shared by the HLS and RTL backends) ---------------------------------------------
    def rom_tables(self):
        """(etab, shift) per input code: e_c itself when the alignment is exact (shifts 0), else M_c 2^G and h_c."""
        mants, shifts = self.exp_table()
        g = self.precision()[1]
        if self.exact_alignment():
            return [(m << g) >> h for m, h in zip(mants, shifts)], [0] * len(mants)
        return [m << g for m in mants], list(shifts)

    def hw_params(self):
        """Template parameters of the C++ / Verilog cores, in their order."""
        nums, _, d, offset = self.row_thresholds()
        k = len(nums)
        return {"N": self.get_nodeattr("NumChannels"), "PE": self.get_nodeattr("PE"), "IB": self.input_format().bits,
                "OB": self.output_format().bits, "EB": self.e_bits(), "HB": self.shift_bits(),
                "EXACT": "true" if self.exact_alignment() else "false", "SB": self.sum_bits(), "NB": self.num_bits(),
                "CW": self.cmp_bits(), "TW": self.theta_bits(), "D": d, "K": k, "KA": max(k, 1), "OFFSET": offset,
                "NV": len(self.output_format().values()), "CB": max(1, k.bit_length()), "KU": self.threshold_units()}

    # --- golden model ------------------------------------------------------------------------------------------
    def execute_python(self, x):
        """The contract on all rows at once: numpy int64 when e_i and S fit 62 bits (``sum_bits``; the row thresholds'
        products as Python ints when they leave int64, ``cmp_bits``), else row by row in Python ints
        (``execute_python_ints``)."""
        if self.sum_bits() > 62:
            return self.execute_python_ints(x)
        fi = self.input_format()
        mants, shifts = (np.asarray(t, dtype=np.int64) for t in self.exp_table())
        nums, bias, d, offset = self.row_thresholds()
        g = self.precision()[1]
        x = np.asarray(x, dtype=np.float32)
        codes = fi.encode(x).astype(np.int64).reshape(-1, x.shape[-1])
        h = shifts[codes]
        e = (mants[codes] << g) >> np.minimum(h - h.min(axis=1, keepdims=True), 63)
        total = e.sum(axis=1, keepdims=True)
        if self.cmp_bits() <= 64:  # num_k S + b_k + 2^D - 1 <= 2^D (S + 1) <= 2^(cmp_bits - 2): int64
            prod = np.asarray(nums, dtype=np.int64)[None, :] * total + np.asarray(bias, dtype=np.int64)[None, :]
            theta = (prod + ((1 << d) - 1)) >> d
        else:  # products beyond int64: theta_k in Python ints, capped at 2^62 > S >= e_i (no comparison changes)
            prod = np.asarray(nums, dtype=object)[None, :] * total.astype(object) + np.asarray(bias, dtype=object)
            theta = np.minimum((prod + ((1 << d) - 1)) >> d, 1 << 62).astype(np.int64)
        count = offset + (e[:, :, None] >= theta[:, None, :]).sum(axis=2)
        return self.output_format().values().astype(np.float32)[count].reshape(x.shape)

    def execute_python_ints(self, x):
        """The contract with Python ints (any width)."""
        fi, fo = self.input_format(), self.output_format()
        mants, shifts = self.exp_table()
        nums, bias, d, offset = self.row_thresholds()
        g = self.precision()[1]
        x = np.asarray(x, dtype=np.float32)
        codes = fi.encode(x).astype(np.int64).reshape(-1, x.shape[-1])
        values = fo.values()
        out = np.empty(codes.shape, dtype=np.float32)
        for r, row in enumerate(codes):
            h_min = min(shifts[c] for c in row)
            e = [(mants[c] << g) >> (shifts[c] - h_min) for c in row]
            total = sum(e)
            theta = [(n * total + b + (1 << d) - 1) >> d for n, b in zip(nums, bias)]
            for i, ei in enumerate(e):
                out[r, i] = values[offset + sum(1 for t in theta if ei >= t)]
        return out.reshape(x.shape)

    def execute_node(self, context, graph):
        node = self.onnx_node
        context[node.output[0]] = self.execute_python(context[node.input[0]])

    # --- performance and resources -------------------------------------------------------------------------------
    def rows(self):
        return int(np.prod(self.get_nodeattr("numInputVectors")))

    def threshold_units(self):
        ku = int(self.get_nodeattr("thresholdUnits"))
        if ku < 1:
            raise UnsupportedNodeError(f"{self.onnx_node.name}: thresholdUnits={ku}, must be >= 1")
        return ku

    def passes(self):
        """Passes of stage A over a row: 1 (read and sum) when the alignment is exact, else 2 (read, sum)."""
        return 1 if self.exact_alignment() else 2

    def frame_cycles(self, folds, units):
        """Cycles of one frame at ``folds`` words a row and ``units`` threshold multipliers."""
        return rtl_schedule(self.rows(), folds, self.passes(), len(self.row_thresholds()[0]), units)["cycles"]

    def get_exp_cycles(self):
        """The RTL's cycles for one frame at full-rate streams: the row recurrence of
        ``softmax_schedule.rtl_schedule`` (about max(passes * N / PE, ceil(K / KU) + 1) per row plus the fill)."""
        return self.frame_cycles(self.folds(), self.threshold_units())

    def max_units(self, folds):
        """The KU beyond which more multipliers no longer shorten a row (``softmax_schedule.useful_units``)."""
        return useful_units(folds, self.passes(), len(self.row_thresholds()[0]))

    def folding_space(self):
        """Every (PE | N, KU) pair worth having: per PE, the KU from 1 up to the multipliers that stop bounding the
        row (``useful_units``), each kept only when it makes the frame faster than the smaller KU before it."""
        n = self.get_nodeattr("NumChannels")
        space = []
        for pe in divisors(n):
            fastest = None
            for ku in range(1, self.max_units(n // pe) + 1):
                cycles = self.frame_cycles(n // pe, ku)
                if fastest is None or cycles < fastest:
                    space.append({"PE": pe, "thresholdUnits": ku})
                    fastest = cycles
        return space

    def lut_estimation(self, fpgapart=None):
        """Analytic: per lane an exp ROM (2^bits x (P + shift bits), 64 bits per LUT), a barrel shifter
        (~(P+G) x log2(shift range) LUTs; two with stage A's sum pass), an adder tree into S, K comparators of
        theta_bits against register values (1 LUT per bit, as measured for the threshold stages:
        ``custom_ops/threshold_cost.py``) and the count -> code mux; with exact alignment the ROM holds e_c (P + G
        bits) and there is no shifter. Per threshold multiplier (in DSPs) its rounding adder, numerator ROM and
        theta write enables (``UNIT_LUT_PER_BIT``, fitted to ``YOSYS_UNITS``); the row buffer's three slots in
        LUTRAM. Yosys: 5,454 LUTs vs 4,612 estimated for the ViT's first
        softmax (16 scores, PE 4, K 31, one multiplier, rows in series)."""
        pe, k, ku = self.get_nodeattr("PE"), len(self.row_thresholds()[0]), self.threshold_units()
        entries = 2 ** self.input_format().bits
        if self.exact_alignment():  # the ROM holds e_c = M_c 2^(G - h_c) itself: no shifter
            rom, shifter = pe * self.e_bits() * max(1, entries // 64), 0
        else:
            rom = pe * (self.precision()[0] + self.shift_bits()) * max(1, entries // 64)
            shifter = 2 * pe * self.e_bits() * self.shift_bits()
        adder = pe * self.sum_bits()
        cmp = pe * k * self.theta_bits() * VAR_COMPARE_LUT_PER_BIT  # against the row's computed thresholds
        mux = pe * self.output_format().bits * max(1, (k + 1) // 4)
        units = ku * UNIT_LUT_PER_BIT * (self.cmp_bits() + self.num_bits())
        ram = lutram_luts(3 * self.folds(), pe * self.input_format().bits)
        return int(rom + shifter + adder + cmp + mux + units + ram + 64)

    def bram_estimation(self, fpgapart=None):
        """Row buffer of N codes (+ the K row thresholds, in registers): BRAM only beyond 1 kbit."""
        bits = self.get_nodeattr("NumChannels") * self.input_format().bits
        return 0 if bits <= 1024 else int(math.ceil(bits / 18432))

    def dsp_estimation(self, fpgapart=None):
        """``thresholdUnits`` num_k x S multipliers (DSP48E1: 25 x 18 signed each)."""
        per_unit = math.ceil(self.num_bits() / 17) * math.ceil((self.sum_bits() + 1) / 24)
        return int(self.threshold_units() * per_unit)

    def ff_estimation(self, fpgapart=None):
        """T's and C's threshold registers, the row sums of A, T (and the hand-over), the output register and the
        stages' control."""
        k = len(self.row_thresholds()[0])
        return int(2 * k * self.theta_bits() + 3 * self.sum_bits() + 3 * self.shift_bits()
                   + self.get_outstream_width() + 3 * 32 + 16)

    def node_res_estimation(self, fpgapart):
        return {"BRAM_18K": self.bram_estimation(), "BRAM_efficiency": 1.0, "LUT": self.lut_estimation(),
                "URAM": 0, "URAM_efficiency": 1.0, "DSP": self.dsp_estimation(), "FF": self.ff_estimation()}

    def get_op_and_param_counts(self):
        return {f"param_softmax_table_{self.get_nodeattr('inputDataType')}": 2 ** self.input_format().bits}


def reference_rational(x, fi, fo, in_scale, out_scale, mantissa_bits, align_bits):
    """Independent statement of the contract with Fractions (slow; tests only): e_i / S rounded exactly by F."""
    mants, shifts = exp_table(fi.qonnx_name, float(np.float32(in_scale)), mantissa_bits)
    mids, up = tie_rounds_up(fo)
    vals = fo.values()
    s = Fraction(float(np.float32(out_scale)))
    x = np.asarray(x, dtype=np.float32)
    codes = fi.encode(x).astype(np.int64).reshape(-1, x.shape[-1])
    out = np.empty(codes.shape, dtype=np.float32)
    for r, row in enumerate(codes):
        h_min = min(shifts[c] for c in row)
        e = [Fraction(mants[c] * 2**align_bits, 2 ** (shifts[c] - h_min)).__floor__() for c in row]
        total = sum(e)
        for i, ei in enumerate(e):
            y = Fraction(ei, total) / s
            out[r, i] = vals[sum(1 for m, u in zip(mids, up) if (y >= m if u else y > m))]
    return out.reshape(x.shape)
