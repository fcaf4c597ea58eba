"""Hardware conversion of the lowered CNN's data movers (after ``ConvertToNHWC``):

* ``InferMinifloatConvInpGen``: qonnx ``Im2Col`` (channels-last, zero padding) on a code tensor ->
  ``MinifloatConvInpGen`` (the sliding window; FINN's ConvolutionInputGenerator refuses minifloat datatypes); a
  depthwise ``Im2Col`` maps the same way: its (kh, kw, c) window order is what ``MinifloatVVAU`` consumes;
* ``InferMinifloatMaxPool``: qonnx ``MaxPoolNHWC`` with kernel = stride and no padding -> ``MinifloatMaxPool``;
  overlapping or padded windows (the ResNet stem's 3x3, stride 2, pad 1) -> ``MinifloatConvInpGen`` padding with the
  format's lowest value (ONNX pads with -inf; every window holds an input pixel, so the maximum is the same) +
  ``MinifloatMaxPool`` over each generated window (``WindowInput``), as FINN pairs ConvolutionInputGenerator + Pool;
* ``InferMinifloatGlobalAccPool``: ``ExactSumPool`` over every axis between batch and channels (global average
  pooling of a CNN, token pooling of a ViT) -> ``MinifloatGlobalAccPool``;
* ``RemoveIntegerCasts``: ``Dequantize`` with scale 1 and offset 0 of a hardware node's accumulator (the lowering's
  move of a pooled sum into a values tensor, passes/lowering/matrix.py) -> removed: the stream carries the same
  integers either way;
* ``InferMinifloatReorder``: a chain of ``Reshape``/``Flatten``/``Transpose``/``Pad`` (zeros)/``Gather``/``Slice``
  with constant parameters between hardware nodes -> one ``MinifloatReorder`` (wires when the chain only reshapes,
  since C order is kept; a frame buffer read through an address ROM otherwise: attention's head split/merge, K's
  transpose, the class token's zero slot and its read-out). An ``Add`` of a constant that is zero wherever the
  chain's data lands (the lowering's class token filling its zero slot, passes/lowering/linear.py) is part of the
  chain: the slot then holds the constant's codes. Layout at the graph's input or output side stays on the host.

Each returns ``(model, False)`` after one sweep, like the other ``Infer*`` passes; nodes that do not match stay
lowered and ``step_convert_to_hw`` lists them with the reason.
"""

import numpy as np
from onnx import helper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.transformation.infer_shapes import InferShapes

import custom_ops  # noqa: F401  (registers the hardware ops)
from compiler.qonnx_formats import format_from_datatype
from custom_ops.minifloat_reorder import aligned_group

FPGADATAFLOW = "finn.custom_op.fpgadataflow"


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _is_code_tensor(model, name):
    dt = model.get_tensor_datatype(name)
    return dt is not None and (dt.name.startswith("FLOAT<") or (dt.is_integer() and dt.bitwidth() <= 8))


def _finish(model, modified):
    if modified:
        model = model.transform(InferShapes()).transform(GiveUniqueNodeNames())
    return model, False


class InferMinifloatConvInpGen(Transformation):
    """qonnx ``Im2Col`` on a code tensor -> ``MinifloatConvInpGen`` (module docstring)."""

    #: why a node of these op types can stay unmapped after this pass (listed by passes.convert_to_hw)
    UNMAPPED = {
        "Im2Col": ("convolution input generator: only zero-padded sliding windows on <= 8-bit code tensors in "
                   "channels-last layout map to MinifloatConvInpGen"),
    }

    def apply(self, model):
        modified = False
        for node in list(model.graph.node):
            if node.op_type != "Im2Col" or not _is_code_tensor(model, node.input[0]):
                continue
            inst = getCustomOp(node)
            if inst.get_nodeattr("pad_value") != 0:
                continue
            shape = model.get_tensor_shape(node.input[0])
            if shape is None or len(shape) != 4 or shape[0] != 1:
                continue
            pad = list(inst.get_nodeattr("pad_amount"))  # [top, left, bottom, right]
            dt = model.get_tensor_datatype(node.input[0]).name
            new = helper.make_node(
                "MinifloatConvInpGen", [node.input[0]], [node.output[0]], domain=FPGADATAFLOW,
                backend="fpgadataflow", name=f"MinifloatConvInpGen_{node.name}",
                IFMDim=[int(shape[1]), int(shape[2])], NumChannels=int(shape[3]), SIMD=1,
                ConvKernelDim=list(inst.get_nodeattr("kernel_size")), Stride=list(inst.get_nodeattr("stride")),
                Dilation=list(inst.get_nodeattr("dilations")), Padding=pad, inputDataType=dt, outputDataType=dt,
            )
            model.graph.node.insert(list(model.graph.node).index(node), new)
            model.graph.node.remove(node)
            modified = True
        return _finish(model, modified)


class InferMinifloatMaxPool(Transformation):
    """qonnx ``MaxPoolNHWC`` (floor mode) -> ``MinifloatMaxPool``, after a ``MinifloatConvInpGen`` when the windows
    overlap or are padded (module docstring)."""

    #: why a node of these op types can stay unmapped after this pass (listed by passes.convert_to_hw)
    UNMAPPED = {
        "MaxPoolNHWC": ("max pooling in ceil mode, with a pad as large as the kernel or on a batch > 1: no "
                        "MinifloatMaxPool mapping"),
    }

    def apply(self, model):
        modified = False
        for node in list(model.graph.node):
            if node.op_type != "MaxPoolNHWC" or not _is_code_tensor(model, node.input[0]):
                continue
            a = _attrs(node)
            kernel = list(a.get("kernel_shape", []))
            strides = list(a.get("strides", kernel))
            pads = list(a.get("pads", [0] * 4))
            dilations = list(a.get("dilations", [1, 1]))
            shape = model.get_tensor_shape(node.input[0])
            if len(kernel) != 2 or a.get("ceil_mode", 0) or shape is None or len(shape) != 4 or shape[0] != 1:
                continue
            dt = model.get_tensor_datatype(node.input[0]).name
            common = dict(domain=FPGADATAFLOW, backend="fpgadataflow", NumChannels=int(shape[3]),
                          inputDataType=dt, outputDataType=dt)
            if strides == kernel and not any(pads) and dilations == [1, 1]:
                new = [helper.make_node("MinifloatMaxPool", [node.input[0]], [node.output[0]],
                                        name=f"MinifloatMaxPool_{node.name}", IFMDim=[int(shape[1]), int(shape[2])],
                                        PE=1, PoolDim=kernel, **common)]
            else:
                if any(p >= k for p, k in zip(pads, kernel + kernel)):
                    continue  # a window of padding only: its -inf maximum has no value in the format
                oh, ow = model.get_tensor_shape(node.output[0])[1:3]
                windows = model.make_new_valueinfo_name()
                model.set_tensor_shape(windows, [1, int(oh), int(ow), kernel[0] * kernel[1] * int(shape[3])])
                model.set_tensor_datatype(windows, model.get_tensor_datatype(node.input[0]))
                lowest = float(format_from_datatype(dt, node.name).values()[0])
                new = [helper.make_node("MinifloatConvInpGen", [node.input[0]], [windows],
                                        name=f"MinifloatConvInpGen_{node.name}", IFMDim=[int(shape[1]), int(shape[2])],
                                        SIMD=1, ConvKernelDim=kernel, Stride=strides, Dilation=dilations,
                                        Padding=pads, PadValue=lowest, **common),
                       helper.make_node("MinifloatMaxPool", [windows], [node.output[0]],
                                        name=f"MinifloatMaxPool_{node.name}", IFMDim=[int(oh), int(ow)], PE=1,
                                        PoolDim=kernel, WindowInput=1, **common)]
            pos = list(model.graph.node).index(node)
            for offset, n in enumerate(new):
                model.graph.node.insert(pos + offset, n)
            model.graph.node.remove(node)
            modified = True
        return _finish(model, modified)


class InferMinifloatGlobalAccPool(Transformation):
    """``ExactSumPool`` over all pixel/token axes (not the kernelled 2-D sum pool) -> ``MinifloatGlobalAccPool``."""

    #: why a node of these op types can stay unmapped after this pass (listed by passes.convert_to_hw)
    UNMAPPED = {
        "ExactSumPool": ("sum pooling with a kernel (2-D average pooling): only global pooling over all pixels/tokens "
                         "maps to MinifloatGlobalAccPool"),
    }

    def apply(self, model):
        modified = False
        for node in list(model.graph.node):
            if node.op_type != "ExactSumPool" or len(node.input) < 2:
                continue
            inst = getCustomOp(node)
            shape = model.get_tensor_shape(node.input[0])
            if inst.get_nodeattr("kernel") or shape is None or len(shape) < 3 or shape[0] != 1:
                continue
            if inst.axes(model, len(shape)) != list(range(1, len(shape) - 1)):
                continue
            pixels = int(np.prod(shape[1:-1]))
            new = helper.make_node(
                "MinifloatGlobalAccPool", [node.input[0]], [node.output[0]], domain=FPGADATAFLOW,
                backend="fpgadataflow", name=f"MinifloatGlobalAccPool_{node.name}", IFMDim=[1, pixels],
                NumChannels=int(shape[-1]), PE=1, numInputVectors=[int(d) for d in shape[:-1]],
                inputDataType=inst.get_nodeattr("format"),
                outputDataType=model.get_tensor_datatype(node.output[0]).name,
            )
            model.graph.node.insert(list(model.graph.node).index(node), new)
            model.graph.node.remove(node)
            modified = True
        return _finish(model, modified)


class RemoveIntegerCasts(Transformation):
    """Remove ``Dequantize(acc, 1, 0)`` (an integer cast, module docstring) after a hardware node; its consumers
    read the accumulator."""

    def apply(self, model):
        modified = False
        outputs = {o.name for o in model.graph.output}
        for node in list(model.graph.node):
            if node.op_type != "Dequantize" or getCustomOp(node).get_nodeattr("input_kind") != "accumulator" or \
                    getCustomOp(node).get_nodeattr("relu") or node.output[0] in outputs:
                continue
            params = [_const(model, node, i) for i in (1, 2)]
            producer = model.find_producer(node.input[0])
            if any(p is None or np.asarray(p).size != 1 for p in params) or float(np.asarray(params[0])) != 1.0 or \
                    float(np.asarray(params[1])) != 0.0 or producer is None or \
                    not producer.domain.startswith(FPGADATAFLOW):
                continue
            consumers = model.find_consumers(node.output[0]) or []
            for consumer in consumers:
                for i, t in enumerate(consumer.input):
                    if t == node.output[0]:
                        consumer.input[i] = node.input[0]
            model.graph.node.remove(node)
            dt = model.get_tensor_datatype(node.input[0])
            while consumers:  # layout ops after the cast carry the integers' datatype, not the cast's float
                layout = [c for c in consumers if c.op_type in LAYOUT_OPS]
                for c in layout:
                    model.set_tensor_datatype(c.output[0], dt)
                consumers = [n for c in layout for n in model.find_consumers(c.output[0]) or []]
            modified = True
        return _finish(model, modified)


LAYOUT_OPS = ("Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Pad", "Gather", "Slice")


def _const(model, node, i):
    return model.get_initializer(node.input[i]) if len(node.input) > i and node.input[i] else None


#: ops a MinifloatReorder chain may hold: data movement, and an Add of constants into padding slots
REORDER_OPS = LAYOUT_OPS + ("Add",)


def _slot_constant(model, node):
    """For an ``Add`` of one dynamic input and one constant: (index of the dynamic input, the constant), else None."""
    consts = [_const(model, node, i) for i in range(len(node.input))]
    if len(node.input) != 2 or sum(c is None for c in consts) != 1:
        return None
    dyn = consts.index(None)
    return dyn, np.asarray(consts[1 - dyn], dtype=np.float32)


def _movable(model, node):
    """Whether a layout node is a pure data move with constant parameters (zero padding only), or an Add of a
    constant (whether it only fills padding slots is checked on the whole chain, ``_layout_index``)."""
    if node.op_type == "Add":
        return _slot_constant(model, node) is not None
    if node.op_type == "Pad":
        value = _const(model, node, 2)
        mode = _attrs(node).get("mode", b"constant")
        return _const(model, node, 1) is not None and (value is None or float(np.asarray(value)) == 0.0) and \
            mode in (b"constant", "constant") and (len(node.input) < 4 or not node.input[3])
    if node.op_type == "Gather":
        return _const(model, node, 1) is not None
    if node.op_type == "Slice":
        return all(_const(model, node, i) is not None for i in range(1, len(node.input)) if node.input[i])
    return True


def _layout_index(model, chain, shape):
    """The composed data move of a chain of layout nodes: (index, constants) with output element k reading input
    element index[k] (-1: a zero from padding, -2 - j: ``constants[j]``, a constant an ``Add`` put into a padding
    slot); None when an ``Add`` would add a nonzero constant to data."""
    idx = np.arange(int(np.prod(shape))).reshape(shape)
    fill = np.zeros(idx.shape, dtype=np.float32)  # the value of every padding slot, moved along with idx
    for node in chain:
        if node.op_type == "Add":
            const = np.broadcast_to(_slot_constant(model, node)[1], idx.shape)
            if np.any(const[idx >= 0] != 0):
                return None
            fill = fill + const
            continue
        idx, fill = _move(model, node, idx), _move(model, node, fill)
    idx, fill = idx.ravel(), fill.ravel()
    constants = sorted(set(float(v) for v in fill[(idx < 0) & (fill != 0)]))
    if constants:
        slot = {v: -2 - j for j, v in enumerate(constants)}
        idx = np.array([slot[float(f)] if i < 0 and f != 0 else i for i, f in zip(idx, fill)])
    return idx, constants


def _move(model, node, idx):
    """``idx`` moved by one data-movement node (padding with -1 for index arrays, 0 for values)."""
    if node.op_type == "Transpose":
        perm = [a.ints for a in node.attribute if a.name == "perm"]
        idx = idx.transpose(list(perm[0]) if perm else None)
    elif node.op_type == "Pad":
        pads = np.asarray(_const(model, node, 1)).astype(int)
        half = len(pads) // 2
        idx = np.pad(idx, list(zip(pads[:half], pads[half:])), constant_values=-1 if idx.dtype.kind == "i" else 0)
    elif node.op_type == "Gather":
        idx = np.take(idx, np.asarray(_const(model, node, 1)).astype(int), axis=_attrs(node).get("axis", 0))
    elif node.op_type == "Slice":
        starts, ends = (np.asarray(_const(model, node, i)).astype(int) for i in (1, 2))
        axes = _const(model, node, 3)
        axes = range(len(starts)) if axes is None else np.asarray(axes).astype(int)
        steps = _const(model, node, 4)
        steps = [1] * len(starts) if steps is None else np.asarray(steps).astype(int)
        sl = [slice(None)] * idx.ndim
        for a, b, e, st in zip(axes, starts, ends, steps):
            sl[int(a)] = slice(int(b), int(e), int(st))
        idx = idx[tuple(sl)]
    else:
        idx = idx.reshape(model.get_tensor_shape(node.output[0]))
    return idx


class InferMinifloatReorder(Transformation):
    """Chains of Reshape / Flatten / Transpose / Squeeze / Unsqueeze / Pad / Gather / Slice (and Adds of constants
    into padding slots) between hardware nodes -> one ``MinifloatReorder`` (identity when the chain keeps C order,
    i.e. only reshapes). Chains at the graph's input or output side (host layout) and chains feeding non-hardware
    nodes stay."""

    #: why a node of these op types can stay unmapped after this pass (listed by passes.convert_to_hw)
    UNMAPPED = {
        "Add": ("float add (a float island), or a constant added to values that does not only fill zero-padded "
                "slots: only slot fills (a class token) map, into a MinifloatReorder"),
    }

    def apply(self, model):
        modified = False
        outputs = {o.name for o in model.graph.output}
        for node in list(model.graph.node):
            if node.op_type not in REORDER_OPS or node not in model.graph.node or not _movable(model, node):
                continue
            producer = model.find_producer(node.input[0])
            if producer is None or not producer.domain.startswith(FPGADATAFLOW):
                continue
            chain = [node]
            while True:
                consumers = model.find_consumers(chain[-1].output[0]) or []
                if len(consumers) == 1 and consumers[0].op_type in REORDER_OPS and _movable(model, consumers[0]) \
                        and chain[-1].output[0] not in outputs:
                    chain.append(consumers[0])
                else:
                    break
            end = chain[-1].output[0]
            consumers = model.find_consumers(end) or []
            if end in outputs or not consumers or not all(c.domain.startswith(FPGADATAFLOW) for c in consumers):
                continue
            in_shape = model.get_tensor_shape(node.input[0])
            out_shape = model.get_tensor_shape(end)
            layout = _layout_index(model, chain, in_shape)
            if layout is None:
                continue
            index, constants = layout
            identity = len(index) == int(np.prod(in_shape)) and bool(np.array_equal(index, np.arange(len(index))))
            dt = model.get_tensor_datatype(node.input[0])
            new = helper.make_node(
                "MinifloatReorder", [node.input[0]], [end], domain=FPGADATAFLOW, backend="fpgadataflow",
                name=f"MinifloatReorder_{node.name}", inputShape=[int(d) for d in in_shape],
                outputShape=[int(d) for d in out_shape], NumChannels=int(out_shape[-1]) if identity else
                aligned_group(index, int(np.prod(in_shape))), PE=1, dataType=dt.name,
                **({} if identity else {"index": [int(i) for i in index]}),
                **({"constants": constants} if constants else {}),
            )
            model.graph.node.insert(list(model.graph.node).index(node), new)
            for n in chain:
                model.graph.node.remove(n)
            modified = True
        return _finish(model, modified)
