"""FINN's weight IODMAs for external weights (MinifloatMVAU ``mem_mode = "external"``) and their deployment bytes.

On the board the weights of an external-weights node live in DDR/HBM and reach its in1 through an IODMA in "wrap"
burst mode, which reads its buffer over and over, one in1 word per buffer row. FINN's ``InsertIODMA`` inserts these
only for its own MVAU/VVAU op types, so ``InsertExternalWeightDMA`` does the same for minifinn's nodes, with FINN's
structure, so that FINN's ExternalizeParams, CreateDataflowPartition, ZynqBuild / VitisBuild and driver layout
treat the DMA as their own:

* the weight tensor (the node's input 1) becomes the DMA's input; its initializer is the DMA's memory
  (``memory_image``): one row per in1 word, the word's bytes (its padded width, ``get_instream_width_padded(1)``)
  most significant first, datatype UINT8, as FINN's IODMAs move activations (FINN's HLS types have no minifloat,
  and 8-bit elements keep every row byte aligned: a word of PE*SIMD codes need not be); for byte-aligned words
  this is FINN's own ``get_mem_init`` layout of the codes, repacked into bytes. It gets a value_info
  (ExternalizeParams makes it a graph input);
* a new tensor carries the words to the node's in1, with the weight values as its initializer (FINN keeps one
  there; ExternalizeParams removes it when partitioning);
* ``IODMA_hls``: numInputVectors [rows], NumChannels bytes per row, dataType UINT8, intfWidth gcd(buffer bits,
  ``max_intfwidth``), streamWidth the node's padded in1 width, direction "in", burstMode "wrap"; the node's
  ``inFIFODepths`` get an in1 entry.

``external_weight_bytes`` are the bytes FINN's driver loads into the buffer (``to_external_tensor`` of the memory
image): per row the word ``matrix_words`` gives, little-endian. Each frame reads the buffer
``external_reads_per_frame()`` times (once per input vector), so the driver starts the DMA for batch x that many
repetitions.
"""

import copy
import math

import numpy as np
from onnx import TensorProto
from onnx import helper as oh
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import SortGraph

from custom_ops.capabilities import HWOpCapabilities
from finn.util.data_packing import to_external_tensor


def external_weight_nodes(model):
    """(node, op) of every node whose weights stream from external memory, in graph order."""
    out = []
    for node in model.graph.node:
        inst = getCustomOp(node) if node.domain.startswith("finn.custom_op.fpgadataflow") else None
        if isinstance(inst, HWOpCapabilities) and inst.external_weight_bits():
            out.append((node, inst))
    return out


def _row_bytes(inst):
    return inst.get_instream_width_padded(1) // 8


def external_weight_bytes(inst, w_values):
    """The weight buffer's bytes (uint8): per in1 word (``matrix_words``) its bytes, little-endian."""
    n = _row_bytes(inst)
    return np.frombuffer(b"".join(int(w).to_bytes(n, "little") for w in inst.matrix_words(w_values)), dtype=np.uint8)


def memory_image(inst, w_values):
    """The weight DMA's buffer as FINN's IODMA input: (words, bytes per word) UINT8 values, most significant byte
    first (FINN's packing then gives the little-endian bytes of ``external_weight_bytes``), float32."""
    n = _row_bytes(inst)
    return external_weight_bytes(inst, w_values).reshape(-1, n)[:, ::-1].astype(np.float32)


class InsertExternalWeightDMA(Transformation):
    """A wrap-mode IODMA_hls in front of every external-weights node that has none (module docstring);
    ``max_intfwidth``: the AXI-MM width limit (FINN: the board's ``pynq_native_port_width`` on Zynq,
    ``vitis_iodma_intf_max_width`` on Alveo)."""

    def __init__(self, max_intfwidth=64):
        super().__init__()
        self.max_intfwidth = int(max_intfwidth)

    def apply(self, model):
        modified = False
        for node, inst in external_weight_nodes(model):
            w_name = node.input[1]
            if model.find_producer(w_name) is not None:
                continue
            w = model.get_initializer(w_name)
            mem = memory_image(inst, w)
            transfer_bits = int(mem.size) * 8
            intfwidth = math.gcd(transfer_bits, self.max_intfwidth)
            if intfwidth % 8:
                raise ValueError(f"{node.name}: its {transfer_bits}-bit weight buffer has no AXI-MM width that is a "
                                 f"multiple of 8 bits within {self.max_intfwidth}")
            model.set_initializer(w_name, mem)
            model.set_tensor_shape(w_name, list(mem.shape))  # a value_info, as ExternalizeParams needs
            model.set_tensor_datatype(w_name, DataType["UINT8"])
            stream = model.make_new_valueinfo_name()
            model.graph.value_info.append(oh.make_tensor_value_info(stream, TensorProto.FLOAT, list(mem.shape)))
            model.set_tensor_datatype(stream, inst.get_weight_datatype())
            model.set_initializer(stream, w)
            dma = oh.make_node("IODMA_hls", [w_name], [stream], numInputVectors=[int(mem.shape[0])],
                               NumChannels=int(mem.shape[1]), dataType="UINT8", intfWidth=intfwidth,
                               streamWidth=inst.get_instream_width_padded(1), direction="in", burstMode="wrap",
                               domain="finn.custom_op.fpgadataflow.hls", backend="fpgadataflow",
                               name=f"{node.name}_weight_dma")
            node.input[1] = stream
            model.graph.node.append(dma)
            depths = list(inst.get_nodeattr("inFIFODepths"))
            inst.set_nodeattr("inFIFODepths", (depths + [2, 2])[:2])
            modified = True
        if modified:
            model = model.transform(SortGraph())
        return model, False


def _entry(dma, node, inst, data):
    return {"dma": dma, "node": node, "reps_per_frame": int(inst.external_reads_per_frame()),
            "file": f"runtime_weights/{dma}.npy", "bytes": int(data.size), "data": data}


def external_weight_entries(model):
    """One entry per weight DMA the accelerator has: {"dma": its instance name, "node": the layer it feeds,
    "reps_per_frame": buffer reads per frame, "file": the driver's file for it, "bytes": the buffer size, "data":
    the buffer bytes (uint8)}.

    For FINN's partitioned model (ZynqBuild / VitisBuild: IODMA partitions) the names are the partitions'
    ``instance_name``s and the bytes FINN's driver layout of the DMA's buffer. For the dataflow model (before the
    vendor build) they are the names MakeZYNQProject will give: PartitionFromLambda puts each partition whose
    inputs are all initializers (a weight DMA's) at the front of the parent graph, after ``InsertIODMA`` and
    ``Floorplan`` numbered the input DMA first and then the weight DMAs in graph order, so the parent lists the
    weight DMAs in reverse graph order, then the input DMA, and the DMAs without producers are named idma0, idma1,
    ... in that order: the weight DMA of the last external-weights layer is idma0 and the input DMA idma<k> for k
    weight DMAs (tests/test_external_weights.py checks this against FINN's transformations)."""
    if model.graph.node and all(n.op_type == "StreamingDataflowPartition" for n in model.graph.node):
        return _partitioned_entries(model)
    nodes = external_weight_nodes(model)
    return [_entry(f"idma{len(nodes) - 1 - i}", node.name, inst,
                   external_weight_bytes(inst, model.get_initializer(node.input[1])))
            for i, (node, inst) in enumerate(nodes)]


def _partitioned_entries(parent):
    entries = []
    for sdp in parent.graph.node:
        dma_model = ModelWrapper(getCustomOp(sdp).get_nodeattr("model"))
        first = dma_model.graph.node[0]
        if first.op_type != "IODMA_hls" or getCustomOp(first).get_nodeattr("burstMode") != "wrap":
            continue
        target = parent.find_consumer(sdp.output[0])
        target_model = ModelWrapper(getCustomOp(target).get_nodeattr("model"))
        layer = target_model.find_consumer(target_model.graph.input[list(target.input).index(sdp.output[0])].name)
        mem = dma_model.get_initializer(first.input[0])
        data = to_external_tensor(mem, DataType[getCustomOp(first).get_nodeattr("dataType")])
        entries.append(_entry(getCustomOp(sdp).get_nodeattr("instance_name"), layer.name, getCustomOp(layer), data))
    return entries


def expose_external_weight_streams(model):
    """A copy of ``model`` in which every external weight tensor is a graph input without initializer (qonnx's
    cleanup drops static graph inputs), so FINN's CreateStitchedIP makes the layer's in1 a top-level AXI stream of
    the stitched IP (``s_axis_<i>`` after the activation input); for stitching only: the layers' code is generated
    from the model with its weights, and the ZynqBuild / VitisBuild flow feeds in1 from a weight DMA instead
    (``InsertExternalWeightDMA``)."""
    exposed = copy.deepcopy(model)
    for node, _ in external_weight_nodes(exposed):
        name = node.input[1]
        vi = exposed.get_tensor_valueinfo(name)
        if vi is None:
            vi = oh.make_tensor_value_info(name, TensorProto.FLOAT, list(exposed.get_initializer(name).shape))
        elif vi in exposed.graph.value_info:
            exposed.graph.value_info.remove(vi)
        if name not in [t.name for t in exposed.graph.input]:
            exposed.graph.input.append(vi)
        exposed.graph.initializer.remove(next(t for t in exposed.graph.initializer if t.name == name))
    return exposed
