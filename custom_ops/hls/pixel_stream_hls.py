"""PixelStreamHLS: cppsim packing shared by the HLS backends of the sliding-window, max-pool and global-pool ops
(custom_ops/hls/stream_ops.hpp): codes of the input format, ``lanes()`` per word; outputs decoded as codes, or as
two's-complement integers for accumulators."""

import numpy as np

from compiler.numerics import IntFormat
from custom_ops.codegen import codes_of, pack_words, unpack_words
from custom_ops.hls.stream_backend import HLSStreamBackend


class PixelStreamHLS(HLSStreamBackend):
    HEADER = "stream_ops.hpp"

    def input_words(self, context):
        fi = self.input_format()
        x = self.input_tensor(context)
        return [(pack_words(codes_of(np.asarray(x, dtype=np.float32).reshape(-1, self.lanes()), fi), fi.bits),
                 self.get_instream_width())]

    def decode_output(self, words):
        fo, lanes = self.output_format(), self.lanes()
        if isinstance(fo, IntFormat) and fo.bits > 8:
            return unpack_words(words, fo.bits, lanes, signed=fo.signed)
        return fo.decode(unpack_words(words, fo.bits, lanes).astype(np.int64))

    def execute_node(self, context, graph):
        def python(ctx, g):
            self.output_tensor(ctx, self.execute_python(self.input_tensor(ctx)))

        if self.get_nodeattr("exec_mode") == "cppsim":
            self.output_tensor(context, self.run_cppsim(context))
        else:
            self.execute_cppsim_or_python(context, graph, python)
