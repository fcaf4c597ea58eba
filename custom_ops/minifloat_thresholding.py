"""MinifloatThresholding: standalone requantizer of an exact integer stream (FINN HWCustomOp), in three styles.

Input ``acc`` (..., C) integers of ``inputDataType`` (INTn: an MVAU's accumulator, a LayerNorm's z, a pooling sum),
output values of ``outputDataType``, PE channels per stream word (one word of PE accumulators in, one word of PE
output codes out, element 0 in the LSBs). ``requantStyle`` selects the arithmetic, each a bit-exact contract:

* ``"parallel"`` and ``"bsearch"``: the threshold contract of the lowered graph's ``MinifloatThreshold`` on the last
  axis, thresholds ``T`` (C, N) (input 1) non-decreasing along N, ``channel_signs`` (C, +1/-1, empty = all +1):
  ``out[..., c] = out_values[#{i : sign[c] * acc[..., c] >= T[c, i]}]`` with ``out_values`` the output format's
  sorted values. "parallel" compares with the N thresholds at once (N comparators per lane); "bsearch" finds the
  same count by a binary search, one pipelined comparison per bit of the count (FINN's thresholding core), with the
  thresholds in LUT ROM or block RAM (``ram_style``): the same bits.
* ``"convert"``: requantization by conversion, ``custom_ops/requant_convert.py`` (``P = acc * M[c] + B[c]``,
  relu if ``convertRelu``, round half to even of ``P / 2^shift[c]`` onto the output format with saturation and
  subnormals), parameters (C, 3) [M, B, shift] in input 2 (``passes/requant_params.py``); the channel signs are in
  the signs of ``M``. One multiplier per lane (a DSP48 unless ``use_dsp = 0``).

``requantStyles`` lists the styles a build allows (empty: every style the node can do; "convert" only with input 2;
a node that can do none of the listed styles keeps all of its own); the folding space is every PE divisor of C times
every allowed style, so the resource-aware folding (passes/resource_folding.py) picks the style together with PE
from the estimates (``custom_ops/threshold_cost.py`` for "parallel", ``custom_ops/requant_cost.py`` for the others,
both fitted to Yosys). ``requantizer()`` answers "thresholds" (parallel), "bsearch" or "convert".
"""

import numpy as np

from compiler.errors import UnsupportedNodeError
from compiler.numerics import IntFormat
from compiler.qonnx_formats import qonnx_datatype
from custom_ops.channel_stream import ChannelStreamOp
from custom_ops.codegen import codes_of
from custom_ops.general.common import bits_for_range, threshold_ints
from custom_ops.general.threshold import apply_thresholds
from custom_ops.requant_convert import convert_requant
from custom_ops.requant_cost import bsearch_block_stages, bsearch_resources, convert_resources, search_stages

REQUANT_STYLES = ("parallel", "bsearch", "convert")
#: index of the conversion parameters among the node's inputs
PARAMS_INPUT = 2
#: conversion parameter widths assumed by the estimates while ``convertWidths`` is unset: 16-bit scale mantissas
#: (the project's default S) with their sign, 6-bit shifts; the bias as wide as the product
DEFAULT_MULT_BITS = 17
DEFAULT_SHIFT_BITS = 6


def convert_widths_of(params):
    """[mult bits, bias bits, shift bits] of (C, 3) conversion parameters: two's complement widths of M and B, the
    unsigned width of the shifts (at least 1)."""
    p = threshold_ints(params)
    cols = [[int(v) for v in p[:, j]] for j in range(3)]
    return [bits_for_range(min(cols[0]), max(cols[0])), bits_for_range(min(cols[1]), max(cols[1])),
            max(1, max(cols[2]).bit_length())]


def search_tables(thresholds, acc_bits, stages):
    """The binary search's padded threshold rows: (C, 2^stages - 1) Python ints, each threshold clipped to
    ``[-2^(A-1), 2^(A-1) + 1]`` (``u = +-acc`` lies in ``[-2^(A-1), 2^(A-1)]``, so no count changes) and the rows
    padded with ``2^(A-1) + 1``, which no ``u`` reaches; every value fits A + 1 bits."""
    lo, never = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) + 1
    rows = [[min(max(int(v), lo), never) for v in row] for row in np.asarray(thresholds, dtype=object)]
    return [row + [never] * ((1 << stages) - 1 - len(row)) for row in rows]


def search_memories(thresholds, acc_bits, stages, pe):
    """The memories of the binary search, ``[lane][stage]`` -> list of words: stage s of a lane holds, at
    ``cf * 2^s + b``, the threshold ``T[cf * PE + lane][b * 2^(M-s) + 2^(M-s-1) - 1]`` (``search_tables`` rows) that
    the search compares once it has decided the s leading bits b of the count."""
    rows = search_tables(thresholds, acc_bits, stages)
    cf = len(rows) // pe
    return [[[rows[f * pe + lane][b * (2 << (stages - s - 1)) + (1 << (stages - s - 1)) - 1]
              for f in range(cf) for b in range(1 << s)] for s in range(stages)] for lane in range(pe)]


def search_codes(fmt, stages):
    """Output code of every count of the binary search (2^stages entries; the counts beyond N repeat the last)."""
    codes = [int(v) for v in codes_of(fmt.values(), fmt)]
    return codes + [codes[-1]] * ((1 << stages) - len(codes))


class MinifloatThresholding(ChannelStreamOp):
    THRESHOLD_INPUT = 1

    def op_attrs(self):
        return {
            "inputDataType": ("s", True, ""),
            "channel_signs": ("ints", False, []),
            "requantStyle": ("s", False, "parallel", set(REQUANT_STYLES)),
            # the styles the build allows (names); empty: every style this node can do
            "requantStyles": ("strings", False, []),
            "convertRelu": ("i", False, 0, {0, 1}),
            # [mult, bias, shift] bits of the conversion parameters (``annotate_convert_widths``; estimates only)
            "convertWidths": ("ints", False, []),
            # bsearch threshold memories: "auto" by depth (custom_ops/requant_cost.py), LUT ROM or block RAM
            "ram_style": ("s", False, "auto", {"auto", "distributed", "block"}),
            # convert: 1 = the multiplier in a DSP48, 0 = in LUTs (the LUT-only comparison)
            "use_dsp": ("i", False, 1, {0, 1}),
            # 1: a signed integer output without its most negative value (qonnx's narrow range; INTn types lack it)
            "narrowOutput": ("i", False, 0, {0, 1}),
        }

    # --- styles (capabilities) -------------------------------------------------------------------------------------
    def has_convert_params(self):
        inputs = self.onnx_node.input
        return len(inputs) > PARAMS_INPUT and inputs[PARAMS_INPUT] != ""

    def possible_styles(self):
        """The styles this node can do: both threshold styles, and "convert" when it has conversion parameters."""
        return [s for s in REQUANT_STYLES if s != "convert" or self.has_convert_params()]

    def allowed_styles(self):
        """``requantStyles`` within ``possible_styles`` (all possible ones when the list is empty or none of its
        styles is possible here)."""
        wanted = [s.decode() if isinstance(s, bytes) else s for s in self.get_nodeattr("requantStyles")]
        unknown = [s for s in wanted if s not in REQUANT_STYLES]
        if unknown:
            raise UnsupportedNodeError(f"{self.onnx_node.name}: requantStyles {unknown} unknown; the styles are "
                                       f"{REQUANT_STYLES}")
        possible = self.possible_styles()
        return [s for s in possible if s in wanted] or possible

    def style(self):
        style = self.get_nodeattr("requantStyle")
        if style == "convert" and not self.has_convert_params():
            raise UnsupportedNodeError(f"{self.onnx_node.name}: requantStyle 'convert' needs the conversion "
                                       "parameters as input 2 (passes/requant_params.py)")
        return style

    def folding_space(self):
        return [{"PE": f["PE"], "requantStyle": s} for f in super().folding_space() for s in self.allowed_styles()]

    def requantizer(self):
        style = self.get_nodeattr("requantStyle")
        return "thresholds" if style == "parallel" else style

    # --- formats and streams ---------------------------------------------------------------------------------------
    def output_format(self):
        fmt = super().output_format()
        if self.get_nodeattr("narrowOutput"):
            if fmt.is_minifloat or not fmt.signed:
                raise UnsupportedNodeError(f"{self.onnx_node.name}: narrowOutput needs a signed integer output, not "
                                           f"{fmt.name}")
            return IntFormat(fmt.bits, signed=True, narrow=True)
        return fmt

    def acc_bits(self):
        return qonnx_datatype(self.get_nodeattr("inputDataType")).bitwidth()

    def get_input_datatype(self, ind=0):
        return qonnx_datatype(self.get_nodeattr("inputDataType"))

    def get_instream_width(self, ind=0):
        return 0 if ind else self.get_nodeattr("PE") * self.acc_bits()

    def get_normal_input_shape(self, ind=0):
        if ind == PARAMS_INPUT:
            return (self.get_nodeattr("NumChannels"), 3)
        return super().get_normal_input_shape(ind)

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["s_axis"] = [("in0_V", self.get_instream_width_padded(0))]
        return intf

    def verify_node(self):
        return [f"{self.onnx_node.name}: {self.get_nodeattr('inputDataType')} -> {self.get_nodeattr('outputDataType')}"
                f" ({self.get_nodeattr('requantStyle')})"]

    def search_stages(self):
        """Comparison stages of the binary search: bits of the count (M = clog2(N + 1))."""
        return search_stages(self.n_thresholds())

    def pipeline_latency(self):
        """Cycles from accepting a word to offering its result (the RTL cores; an empty output stream)."""
        style = self.get_nodeattr("requantStyle")
        return {"parallel": 1, "bsearch": self.search_stages() + 2, "convert": 8}[style]

    # --- conversion parameters -------------------------------------------------------------------------------------
    def convert_params(self, model_or_context):
        """(NumChannels, 3) [M, B, shift] from the initializer or the execution context (int64, or Python ints
        beyond int64); one row is repeated for every channel."""
        name = self.onnx_node.input[PARAMS_INPUT]
        p = model_or_context[name] if isinstance(model_or_context, dict) else model_or_context.get_initializer(name)
        p = threshold_ints(p)
        c = self.get_nodeattr("NumChannels")
        if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] not in (1, c):
            raise UnsupportedNodeError(f"{self.onnx_node.name}: conversion parameters of shape {p.shape}, expected "
                                       f"({c}, 3)")
        if np.any(p[:, 2].astype(object) < 0):
            raise UnsupportedNodeError(f"{self.onnx_node.name}: conversion shifts must be >= 0")
        return np.repeat(p, c, axis=0) if p.shape[0] == 1 else p

    def annotate_convert_widths(self, model):
        """Record the parameter widths for the estimates (``convertWidths``); nothing without parameters."""
        if self.has_convert_params():
            self.set_nodeattr("convertWidths", convert_widths_of(self.convert_params(model)))

    def convert_widths(self):
        """[mult, bias, shift] bits: ``convertWidths``, else the defaults (see DEFAULT_MULT_BITS)."""
        widths = list(self.get_nodeattr("convertWidths"))
        if len(widths) == 3:
            return widths
        return [DEFAULT_MULT_BITS, self.acc_bits() + DEFAULT_MULT_BITS, DEFAULT_SHIFT_BITS]

    # --- estimates -------------------------------------------------------------------------------------------------
    def block_stages(self):
        """Bit s set: binary-search stage s keeps its thresholds in block RAM (``ram_style``). A lane's stage s holds
        ``rows * 2^s`` distinct words (``_threshold_rows_per_lane``): one row shared by every channel stays LUT ROM,
        which synthesis folds into constants."""
        return bsearch_block_stages(self._threshold_rows_per_lane(), self.search_stages(), self.acc_bits() + 1,
                                    self.get_nodeattr("ram_style"))

    def style_resources(self):
        """{LUT, FF, BRAM_18K, DSP} of the node in its current style and folding. The memories of "bsearch" and
        "convert" are priced by their distinct rows per lane: with ``sharedThresholds`` (one threshold row and, from
        the same per-tensor map, one parameter row) every channel reads the same words, the ROM folds into constants
        (Yosys, 64 channels, E3M2, 16-bit input: bsearch 161 LUT, convert 234 LUT + 1 DSP, vs 1,451 / 379 LUT priced
        as 64 distinct rows)."""
        style = self.get_nodeattr("requantStyle")
        pe, fmt = self.get_nodeattr("PE"), self.output_format()
        c = pe * self._threshold_rows_per_lane()  # channels with distinct memory words
        if style == "bsearch":
            return bsearch_resources(c, pe, self.n_thresholds(), self.acc_bits() + 1, fmt.bits, self.block_stages())
        if style == "convert":
            return convert_resources(c, pe, self.acc_bits(), *self.convert_widths(), fmt.bits, fmt.is_minifloat,
                                     bool(self.get_nodeattr("use_dsp")))
        width = self.acc_bits() + 1
        return {"LUT": self.threshold_stage_luts(width) + pe * fmt.bits,
                "FF": int(pe * (self.acc_bits() + fmt.bits) + 16 + self.threshold_stage_ffs(width)),
                "BRAM_18K": 0, "DSP": 0}

    BREAKDOWN_KIND = "requant"  # a standalone requantizer: all of it (capabilities.resource_breakdown)

    def lut_estimation(self, fpgapart=None):
        """"parallel": the PE threshold stages of ACC_BITS + 1 bit thresholds (sign headroom;
        ``custom_ops/threshold_cost.py``) and the output registers; "bsearch" / "convert":
        ``custom_ops/requant_cost.py``. All fitted to Yosys synth_xilinx of the RTL cores."""
        return self.style_resources()["LUT"]

    def ff_estimation(self, fpgapart=None):
        return self.style_resources()["FF"]

    def bram_estimation(self, fpgapart=None):
        return self.style_resources()["BRAM_18K"]

    def dsp_estimation(self, fpgapart=None):
        return self.style_resources()["DSP"]

    def node_res_estimation(self, fpgapart=None):
        res = self.style_resources()
        return {"BRAM_18K": res["BRAM_18K"], "BRAM_efficiency": 1.0, "LUT": res["LUT"], "URAM": 0,
                "URAM_efficiency": 1.0, "DSP": res["DSP"], "FF": res["FF"]}

    def get_op_and_param_counts(self):
        if self.get_nodeattr("requantStyle") == "convert":
            return {"param_convert_M_B_shift": self.get_nodeattr("NumChannels") * 3}
        return {f"param_threshold_{self.get_nodeattr('inputDataType')}":
                self.get_nodeattr("NumChannels") * self.n_thresholds()}

    # --- golden model ----------------------------------------------------------------------------------------------
    def execute_python(self, acc, thresholds=None, params=None):
        """The contract of the node's style (module docstring) on ``acc`` (..., C): int64 or Python-int arrays."""
        fmt = self.output_format()
        if self.style() == "convert":
            return convert_requant(acc, params[:, 0], params[:, 1], params[:, 2],
                                   bool(self.get_nodeattr("convertRelu")), fmt)
        return apply_thresholds(acc, thresholds, fmt.values(), -1, self.signs())

    def execute_node(self, context, graph):
        node = self.onnx_node
        if self.style() == "convert":
            out = self.execute_python(context[node.input[0]], params=self.convert_params(context))
        else:
            out = self.execute_python(context[node.input[0]], self.thresholds(context))
        context[node.output[0]] = out
