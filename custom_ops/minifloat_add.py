"""MinifloatAdd: residual add of two differently scaled minifloat/integer streams, exact, with requantization.

Arithmetic contract (bit exact; the lowered graph's ``ExactAdd`` followed by its ``MinifloatThreshold``): inputs
``x0``, ``x1`` (..., C) of ``in0DataType`` / ``in1DataType``; with integer-domain values ``x_int`` and the integer
alignment coefficients ``coeffs = [k0, k1]`` (passes/streamline.py), ``acc = k0 * x0_int + k1 * x1_int`` exactly,
then ``out[..., c] = out_values[#{i : sign[c] * acc[..., c] >= T[c, i]}]`` (``outputDataType`` values, thresholds
``T`` (C, N) an initializer). PE channels per cycle on both input streams and the output stream.

``noActivation = 1`` (accumulator output, FINN's name, as MinifloatLayerNorm's): no thresholds input and no channel
signs; the node outputs ``acc`` itself (``outputDataType`` = ``accDataType``, two's complement on the stream) and a
standalone ``MinifloatThresholding`` requantizes it in the style the folding chooses by cost (parallel or
binary-search thresholds, or conversion with a DSP), instead of the fused parallel comparators.

``const_in1 = 1``: ``x1`` is a constant initializer of the full input shape (a ViT's positional embedding); the
hardware streams it from a ROM (custom_ops/rtl/rom_stream.v) instead of an input port, so the node has one stream.
"""

import numpy as np

from compiler.errors import UnsupportedNodeError
from compiler.qonnx_formats import format_from_datatype, qonnx_datatype
from custom_ops.channel_stream import ChannelStreamOp
from custom_ops.codegen import codes_of, pack_words
from custom_ops.general.common import exact_ints, widen
from custom_ops.general.threshold import apply_thresholds


class MinifloatAdd(ChannelStreamOp):
    THRESHOLD_INPUT = 2

    def op_attrs(self):
        return {
            "in0DataType": ("s", True, ""),
            "in1DataType": ("s", True, ""),
            "coeffs": ("ints", True, []),
            "accDataType": ("s", True, ""),
            "channel_signs": ("ints", False, []),
            "const_in1": ("i", False, 0),
            "noActivation": ("i", False, 0, {0, 1}),
        }

    def threshold_input(self):
        return None if self.get_nodeattr("noActivation") else super().threshold_input()

    def n_thresholds(self):
        return 0 if self.get_nodeattr("noActivation") else super().n_thresholds()

    def const_words(self, model):
        """The constant operand's stream words (PE codes each, the order of in1's stream)."""
        fmt, pe = self.in_format(1), self.get_nodeattr("PE")
        c = np.asarray(model.get_initializer(self.onnx_node.input[1]), dtype=np.float32)
        c = np.broadcast_to(c, self.get_normal_input_shape(0))
        return pack_words(codes_of(c, fmt).reshape(-1, pe), fmt.bits)

    def in_format(self, ind):
        name = self.get_nodeattr("in0DataType" if ind == 0 else "in1DataType")
        return format_from_datatype(name, self.onnx_node.name)

    def acc_bits(self):
        return qonnx_datatype(self.get_nodeattr("accDataType")).bitwidth()

    def get_input_datatype(self, ind=0):
        return qonnx_datatype(self.get_nodeattr("in0DataType" if ind == 0 else "in1DataType"))

    def get_instream_width(self, ind=0):
        return 0 if ind > 1 else self.get_nodeattr("PE") * self.in_format(ind).bits

    def get_outstream_width(self, ind=0):
        """PE output codes, or (``noActivation``) PE accumulators of ``accDataType`` (may exceed 32 bits)."""
        return self.get_nodeattr("PE") * self.get_output_datatype().bitwidth()

    def operand_width(self, ind):
        return self.get_nodeattr("PE") * self.in_format(ind).bits

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["s_axis"] = [("in0_V", self.get_instream_width_padded(0))]
        if not self.get_nodeattr("const_in1"):
            intf["s_axis"].append(("in1_V", self.get_instream_width_padded(1)))
        return intf

    def verify_node(self):
        if self.get_nodeattr("noActivation") and self.get_nodeattr("outputDataType") != self.get_nodeattr(
                "accDataType"):
            raise UnsupportedNodeError(f"{self.onnx_node.name}: noActivation=1 outputs the accumulator, so "
                                       f"outputDataType must be accDataType ({self.get_nodeattr('accDataType')}), "
                                       f"not {self.get_nodeattr('outputDataType')}")
        return [f"{self.onnx_node.name}: coeffs {list(self.get_nodeattr('coeffs'))}"]

    def lut_estimation(self, fpgapart=None):
        """Two constant multipliers and an adder of acc_bits per lane, the PE threshold stages of acc_bits + 1 bit
        thresholds (``custom_ops/threshold_cost.py``; none with ``noActivation``) and, for a constant operand, its
        ROM (64 bits per LUT)."""
        pe, acc = self.get_nodeattr("PE"), self.acc_bits()
        rom = 0
        if self.get_nodeattr("const_in1"):
            rom = int(np.prod(self.get_normal_input_shape(0))) * self.in_format(1).bits / 64
        thr = 0 if self.get_nodeattr("noActivation") else self.threshold_stage_luts(acc + 1)
        return int(round(pe * 3 * acc + thr + rom))

    def accumulate(self, x0, x1):
        k0, k1 = (int(k) for k in self.get_nodeattr("coeffs"))
        f0, f1 = self.in_format(0), self.in_format(1)
        bound = abs(k0) * f0.max_int + abs(k1) * f1.max_int
        a = widen(exact_ints(x0, f0, self.onnx_node.name), bound)
        b = widen(exact_ints(x1, f1, self.onnx_node.name), bound)
        return a * (k0 if bound >= 2**62 else np.int64(k0)) + b * (k1 if bound >= 2**62 else np.int64(k1))

    def execute_node(self, context, graph):
        node = self.onnx_node
        acc = self.accumulate(context[node.input[0]], context[node.input[1]])
        if self.get_nodeattr("noActivation"):
            context[node.output[0]] = acc
            return
        context[node.output[0]] = apply_thresholds(acc, self.thresholds(context), self.output_format().values(), -1,
                                                   self.signs())
