"""MinifloatGlobalAccPool: exact sum of a code stream over all pixels (tokens) per channel — global average
pooling without the division, which folds into the next quantizer's thresholds (FINN's GlobalAccPool, for
minifloats).

Contract (the lowered graph's ``ExactSumPool`` over every axis between batch and channels): input ``x`` of shape
``numInputVectors + [C]`` holding values of ``inputDataType``; with ``int(v) = v / 2**lsb_exponent`` the format's
exact integer of a value,

    y[0, ..., 0, c] = sum over all pixels p of int(x[0, p, c])     (exact; output datatype ``outputDataType`` INTn)

The output keeps the input's rank with every pixel axis of size 1 (``keepdims``). Stream: PE channels per word,
pixels in order; one accumulator per channel group, emitted after the last pixel.
"""

import numpy as np

from compiler.errors import UnsupportedNodeError
from custom_ops.minifloat_mvau import to_int_domain
from custom_ops.pixel_stream import PixelStreamOp


class MinifloatGlobalAccPool(PixelStreamOp):
    def op_attrs(self):
        return {"numInputVectors": ("ints", True, [1, 1])}

    def pixels(self):
        return int(np.prod(self.get_nodeattr("numInputVectors")[1:]))

    def get_normal_input_shape(self, ind=0):
        return tuple(list(self.get_nodeattr("numInputVectors")) + [self.get_nodeattr("NumChannels")])

    def get_folded_input_shape(self, ind=0):
        return tuple(list(self.get_nodeattr("numInputVectors")) + [self.folds(), self.lanes()])

    def get_normal_output_shape(self, ind=0):
        nv = list(self.get_nodeattr("numInputVectors"))
        return tuple([nv[0]] + [1] * (len(nv) - 1) + [self.get_nodeattr("NumChannels")])

    def acc_bits(self):
        return self.get_output_datatype().bitwidth()

    def get_exp_cycles(self):
        return self.get_number_input_words()

    def execute_python(self, x):
        xi = to_int_domain(x, self.input_format())
        acc = xi.astype(object).sum(axis=tuple(range(1, xi.ndim - 1)), keepdims=True)
        limit = 2 ** (self.acc_bits() - 1)
        if acc.size and max(int(acc.max()), -int(acc.min()) - 1) >= limit:
            raise UnsupportedNodeError(f"{self.onnx_node.name}: the sum exceeds {self.get_nodeattr('outputDataType')}")
        return acc.astype(np.int64) if self.acc_bits() <= 62 else acc

    def execute_node(self, context, graph):
        self.output_tensor(context, self.execute_python(self.input_tensor(context)))

    def lut_estimation(self, fpgapart=None):
        """Per lane a decoder and an adder of the accumulator width, the accumulator memory (C x acc bits) in
        LUTRAM, ~40 LUTs of counters."""
        pe, acc = self.lanes(), self.acc_bits()
        mem = self.get_nodeattr("NumChannels") * acc
        return int(40 + pe * (acc + 2 * self.input_format().bits) + np.ceil(mem / 64))
