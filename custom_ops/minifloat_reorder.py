"""MinifloatReorder: a layout change of a stream (any chain of Reshape / Flatten / Transpose / Pad / Gather / Slice
between hardware nodes: a ViT's patch-to-token reshape, attention's head split and merge, K's transpose, the zero
token a class token is added to, reading out the class token), as one hardware op.

Contract (a data move, bit exact): input ``x`` of shape ``inputShape``, output ``y`` of shape ``outputShape`` with

    y.ravel()[k] = x.ravel()[index[k]]   if index[k] >= 0,   0 (the code of zero)   if index[k] == -1,
                   constants[-2 - index[k]]                   if index[k] <= -2

``constants`` (values of ``dataType``) fill slots the input does not reach: torchvision's class token prepended to
the patch tokens. An empty ``index`` is the identity (pure reshapes: C order is kept, so the stream is unchanged and
the hardware is wires). Otherwise the RTL writes a frame into one of two buffers in arrival order and reads the other
in output order through an address ROM (ping-pong: one frame of latency, a frame every N / PE cycles); an output
word made of padding or constants comes from a ROM of constant words (word 0: zeros). ``PE`` elements per
word: legal when every group of PE consecutive outputs comes from PE consecutive, PE-aligned inputs
(``NumChannels`` holds the largest such group, so PE must divide it, as for FINN's PE-folded ops).
"""

import numpy as np

from compiler.errors import UnsupportedNodeError
from compiler.qonnx_formats import format_from_datatype, qonnx_datatype
from custom_ops.capabilities import HWOpCapabilities
from custom_ops.codegen import codes_of, pack_words
from custom_ops.general.common import batch_shape
from custom_ops.pixel_stream import PixelStreamOp
from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp

#: address-ROM entry of an output word made of padding or constants: bit 31 set, the constant word's index below
#: (ZERO_WORD itself: constant word 0, zeros)
ZERO_WORD = 1 << 31


def aligned_group(index, n_in=None):
    """Largest g dividing the output and input sizes such that each block of g outputs is all padding or reads g
    consecutive, g-aligned inputs."""
    index = np.asarray(index)
    n = len(index)
    n_in = n if n_in is None else n_in
    best = 1
    for g in range(2, n + 1):
        if n % g or n_in % g:
            continue
        blocks = index.reshape(-1, g)
        pad = np.all(blocks < 0, axis=1)
        data = blocks[~pad]
        if np.all(blocks[pad] < 0) and np.all(data[:, 0] % g == 0) and np.all(np.diff(data, axis=1) == 1):
            best = g
    return best


class MinifloatReorder(HWOpCapabilities, HWCustomOp):
    """PE folds over ``NumChannels``, the largest group of consecutive elements the reorder keeps together."""

    def get_nodeattr_types(self):
        attrs = {
            "inputShape": ("ints", True, []),
            "outputShape": ("ints", True, []),
            "index": ("ints", False, []),
            "constants": ("floats", False, []),
            "NumChannels": ("i", True, 1),
            "PE": ("i", False, 1),
            "dataType": ("s", True, ""),
            "rtlsim_dir": ("s", False, ""),
        }
        attrs.update(super().get_nodeattr_types())
        return attrs

    def is_identity(self):
        return len(self.get_nodeattr("index")) == 0

    def n_elements(self):
        return int(np.prod(self.get_nodeattr("inputShape")))

    def n_outputs(self):
        return int(np.prod(self.get_nodeattr("outputShape")))

    def lanes(self):
        pe, group = self.get_nodeattr("PE"), self.get_nodeattr("NumChannels")
        if pe < 1 or group % pe or self.n_elements() % pe or self.n_outputs() % pe:
            raise UnsupportedNodeError(f"{self.onnx_node.name}: PE={pe} must divide NumChannels={group} (the "
                                       "largest group of consecutive elements this reorder keeps together)")
        return pe

    def get_input_datatype(self, ind=0):
        return qonnx_datatype(self.get_nodeattr("dataType"))

    def get_output_datatype(self, ind=0):
        return qonnx_datatype(self.get_nodeattr("dataType"))

    def get_normal_input_shape(self, ind=0):
        return tuple(self.get_nodeattr("inputShape"))

    def get_normal_output_shape(self, ind=0):
        return tuple(self.get_nodeattr("outputShape"))

    def get_folded_input_shape(self, ind=0):
        pe = self.lanes()
        return (1, self.n_elements() // pe, pe)

    def get_folded_output_shape(self, ind=0):
        pe = self.lanes()
        return (1, self.n_outputs() // pe, pe)

    def get_instream_width(self, ind=0):
        return self.lanes() * self.get_input_datatype().bitwidth()

    def get_outstream_width(self, ind=0):
        return self.get_instream_width()

    def get_number_output_values(self):
        return self.n_outputs() // self.lanes()

    def get_exp_cycles(self):
        """Ping-pong: writing one frame and reading the other overlap; the longer side sets the pace."""
        return max(self.n_elements(), self.n_outputs()) // self.lanes()

    def make_shape_compatible_op(self, model):
        return super().make_const_shape_op(self.get_normal_output_shape())

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], self.get_output_datatype())

    def verify_node(self):
        kind = "identity (wires)" if self.is_identity() else "permutation"
        return [f"{self.onnx_node.name}: {kind} {self.get_nodeattr('inputShape')} -> "
                f"{self.get_nodeattr('outputShape')}"]

    def constant_values(self):
        """Per output element, the value a padding / constant slot holds (0 where the input is read)."""
        index = np.asarray(self.get_nodeattr("index"), dtype=np.int64)
        table = np.concatenate([[0.0], np.asarray(self.get_nodeattr("constants"), dtype=np.float32)])
        if np.any(index < -1 - (len(table) - 1)):
            raise UnsupportedNodeError(f"{self.onnx_node.name}: index refers to constant {-2 - int(index.min())}, "
                                       f"but only {len(table) - 1} constants are given")
        return np.where(index < 0, table[np.maximum(-1 - index, 0)], 0.0).astype(np.float32)

    def const_words(self):
        """The constant-word ROM: word 0 zeros, then every distinct output word of padding and constants (PE codes
        each, element 0 in the LSBs); and per output word its index in it (or None for an input word)."""
        pe = self.lanes()
        fmt = format_from_datatype(self.get_nodeattr("dataType"), self.onnx_node.name)
        index = np.asarray(self.get_nodeattr("index")).reshape(-1, pe)
        values = self.constant_values().reshape(-1, pe)
        words, which = [0], []
        for idx, vals in zip(index, values):
            if idx[0] >= 0:
                which.append(None)
                continue
            word = pack_words(codes_of(vals, fmt)[None, :], fmt.bits)[0]
            if word not in words:
                words.append(word)
            which.append(words.index(word))
        return words, which

    def read_words(self):
        """Per output word, in output order, the input word address, or ``ZERO_WORD | j`` for a word of padding and
        constants (constant word j of ``const_words``; the RTL's address ROM)."""
        pe = self.lanes()
        _, which = self.const_words()
        index = np.asarray(self.get_nodeattr("index"))[::pe]
        return [ZERO_WORD | w if w is not None else int(i) // pe for i, w in zip(index, which)]

    def execute_python(self, x):
        """The contract on one image, or on each of a batch of N images (leading axis N in place of the shapes'
        leading 1)."""
        x = np.asarray(x)
        out_shape = self.get_normal_output_shape()
        shape = batch_shape(x, self.get_normal_input_shape())
        images = 0 if shape is None else x.size // self.n_elements()
        if images < 1 or (images > 1 and out_shape[0] != 1):
            raise UnsupportedNodeError(f"{self.onnx_node.name}: input has {x.size} elements, expected "
                                       f"{self.n_elements()} (or a batch of them with inputShape and outputShape "
                                       "starting with the batch, 1)")
        flat = x.reshape(images, self.n_elements())
        if not self.is_identity():
            index = np.asarray(self.get_nodeattr("index"))
            flat = np.where(index < 0, self.constant_values().astype(flat.dtype), flat[:, np.maximum(index, 0)])
        return flat.reshape(out_shape if images == 1 else (images,) + out_shape[1:])

    def execute_node(self, context, graph):
        node = self.onnx_node
        context[node.output[0]] = self.execute_python(context[node.input[0]])

    # --- estimates ---------------------------------------------------------------------------------------------
    def bram_estimation(self, fpgapart=None):
        if self.is_identity() or self.buffer_bits() <= 4096:
            return 0
        words = self.n_elements() // self.lanes()
        addr_bits = max(1, int(np.ceil(np.log2(2 * words)))) + 1
        return PixelStreamOp.bram18_for(self.get_instream_width(), 2 * words) + \
            PixelStreamOp.bram18_for(addr_bits, self.get_number_output_values())

    def buffer_bits(self):
        return 2 * self.n_elements() * self.get_input_datatype().bitwidth()

    def lut_estimation(self, fpgapart=None):
        if self.is_identity():
            return 0
        lutram = int(np.ceil(self.buffer_bits() / 64)) if self.bram_estimation() == 0 else 0
        return int(80 + 2 * self.get_instream_width() + lutram)

    def ff_estimation(self, fpgapart=None):
        return 0 if self.is_identity() else self.get_instream_width() + 64

    def dsp_estimation(self, fpgapart=None):
        return 0

    def uram_estimation(self):
        return 0

    def node_res_estimation(self, fpgapart):
        return {"BRAM_18K": self.bram_estimation(), "BRAM_efficiency": 1.0, "LUT": self.lut_estimation(),
                "URAM": 0, "URAM_efficiency": 1.0, "DSP": 0, "FF": self.ff_estimation()}

    def get_op_and_param_counts(self):
        return {}
