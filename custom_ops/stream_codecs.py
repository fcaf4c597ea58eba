"""Stream codecs: how an op's execution context becomes AXI-stream words and output words become values again.

The HLS backend (cppsim) and the RTL backend (rtlsim) of an op stream the same words, so both mix in the same codec:
``input_words(context)`` -> ``[(words, width)]`` per input stream, ``decode_output(words)`` -> the output values
(any shape with the output's element count), ``n_input_streams()``, and ``store_output(context, values)`` where the
graph may declare the output in another shape. Words pack codes FINN-style (element 0 in the least significant
bits, ``custom_ops.codegen``).
"""

import numpy as np

from compiler.qonnx_formats import format_from_datatype
from custom_ops.codegen import decode_stream, encode_stream, pack_words, unpack_words


class StreamCodec:
    """The interface, with its defaults: one input stream, the output stored as simulated
    (``get_normal_output_shape``). The HLS and RTL stream backends derive from it."""

    def n_input_streams(self):
        return 1

    def stream_inputs(self):
        """The node inputs that arrive on its streams in0, in1, ... (its first ``n_input_streams()`` inputs)."""
        return [t for t in self.onnx_node.input[:self.n_input_streams()] if t]

    def memory_streams(self, model):
        """{input tensor: (words of one pass, word width)} of the streams fed from external memory (none here)."""
        return {}

    def input_words(self, context):
        raise NotImplementedError(f"{type(self).__name__} must pack its inputs (a stream codec)")

    def decode_output(self, words):
        raise NotImplementedError(f"{type(self).__name__} must unpack its outputs (a stream codec)")

    def store_output(self, context, values):
        context[self.onnx_node.output[0]] = values


class CodesCodec(StreamCodec):
    """One stream of ``input_format`` codes in, ``output_format`` codes out, ``PE`` per word (LUT, LayerNorm,
    Softmax)."""

    def input_words(self, context):
        x = context[self.onnx_node.input[0]]
        return [(encode_stream(x, self.input_format(), self.get_nodeattr("PE")), self.get_instream_width())]

    def decode_output(self, words):
        return decode_stream(words, self.output_format(), self.get_nodeattr("PE"))


class ThresholdingCodec(CodesCodec):
    """Accumulators in (two's complement of ``acc_bits``, PE per word), output codes out."""

    def input_words(self, context):
        bits, pe = self.acc_bits(), self.get_nodeattr("PE")
        mask = (1 << bits) - 1
        flat = np.asarray(context[self.onnx_node.input[0]]).reshape(-1, pe)
        words = pack_words(np.array([[int(v) & mask for v in row] for row in flat], dtype=object), bits)
        return [(words, self.get_instream_width())]


class AddCodec(CodesCodec):
    """Two operand streams of codes (one when the second operand is a constant ROM, ``const_in1``); out: PE output
    codes, or PE accumulators (two's complement, ``noActivation = 1``)."""

    def decode_output(self, words):
        if self.get_nodeattr("noActivation"):
            return unpack_words(words, self.get_output_datatype().bitwidth(), self.get_nodeattr("PE"), signed=True)
        return super().decode_output(words)

    def n_input_streams(self):
        return 1 if self.get_nodeattr("const_in1") else 2

    def input_words(self, context):
        node, pe = self.onnx_node, self.get_nodeattr("PE")
        return [(encode_stream(context[node.input[i]], self.in_format(i), pe), self.get_instream_width(i))
                for i in range(self.n_input_streams())]


class MVAUCodec(StreamCodec):
    """in0: the vectors, SIMD codes per word; in1: the matrix words (``dynamic_input``), or the weight words once per
    input vector in the context (``mem_mode = "external"``, W from its initializer, as the DMA streams it); out: PE
    accumulators (two's complement, ``noActivation = 1``) or PE output codes."""

    def n_input_streams(self):
        return 1 if self.weight_source() == "embedded" else 2

    def input_words(self, context):
        node = self.onnx_node
        x = context[node.input[0]]
        streams = [(encode_stream(x, self.input_format(), self.get_nodeattr("SIMD")), self.get_instream_width(0))]
        source = self.weight_source()
        if source == "dynamic":
            streams.append((self.dynamic_matrix_words(context[node.input[1]]), self.get_instream_width(1)))
        elif source == "external":
            vectors = np.asarray(x).size // self.get_nodeattr("MW")
            streams.append((self.external_weight_words(context[node.input[1]], vectors), self.get_instream_width(1)))
        return streams

    def memory_streams(self, model):
        """mem_mode "external": in1 comes from external memory, the matrix words over and over."""
        if self.weight_source() != "external":
            return {}
        w = self.onnx_node.input[1]
        return {w: (self.matrix_words(model.get_initializer(w)), self.get_instream_width(1))}

    def decode_output(self, words):
        ob, pe = self.get_output_datatype().bitwidth(), self.get_nodeattr("PE")
        if self.get_nodeattr("noActivation"):
            return unpack_words(words, ob, pe, signed=True)
        return self.output_format().decode(unpack_words(words, ob, pe).astype(np.int64))


class VVAUCodec(MVAUCodec):
    """in0: the sliding windows, SIMD*PE codes per word (``MinifloatVVAU``); out: as the MVAU's."""

    def n_input_streams(self):
        return 1

    def input_words(self, context):
        lanes = self.get_nodeattr("SIMD") * self.get_nodeattr("PE")
        x = context[self.onnx_node.input[0]]
        return [(encode_stream(x, self.input_format(), lanes), self.get_instream_width(0))]


class PixelCodec(StreamCodec):
    """Feature maps (sliding window, pooling): ``lanes()`` codes per word in and out (accumulators as two's
    complement); the output goes into the shape the graph declares (``output_tensor``)."""

    def input_words(self, context):
        x = self.input_tensor(context)
        return [(encode_stream(x, self.input_format(), self.lanes()), self.get_instream_width())]

    def decode_output(self, words):
        return decode_stream(words, self.output_format(), self.lanes())

    def store_output(self, context, values):
        self.output_tensor(context, values)


class ReorderCodec(StreamCodec):
    """The same format (``dataType``) in and out, ``lanes()`` elements per word."""

    def stream_format(self):
        return format_from_datatype(self.get_nodeattr("dataType"), self.onnx_node.name)

    def input_words(self, context):
        x = context[self.onnx_node.input[0]]
        return [(encode_stream(x, self.stream_format(), self.lanes()), self.get_instream_width())]

    def decode_output(self, words):
        return decode_stream(words, self.stream_format(), self.lanes())
