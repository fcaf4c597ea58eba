"""InferMinifloatMVAU: lowered ``ExactMatMul`` (+ its ``MinifloatThreshold``) -> the ``MinifloatMVAU`` hardware op.

One op for both number systems: integer layers become ``MinifloatMVAU`` too (INTn/UINTn formats), not FINN's MVAU,
so that minifloat/integer comparisons use the same MAC library, the same folding and the same resource model (the
paper's study needs equal footing), and because FINN's MVAU thresholds are fp32-rounded MultiThreshold values while
ours are exact integers in the accumulator domain.

Pattern: ``ExactMatMul(x, W)`` with a constant 2-D ``W`` (MW, MH) and values input ``x`` (..., MW).

* If its only consumer is a ``MinifloatThreshold`` on the last axis, both fuse into one node with
  ``noActivation = 0``: channels with ``channel_signs = -1`` get their weight column negated (exact: the weight
  formats are symmetric; an asymmetric integer weight that cannot be negated is reported), so the MVAU compares
  ``acc >= T`` as its contract says.
* Otherwise ``noActivation = 1`` and the MVAU outputs the accumulator (``accDataType`` = the tensor's INTn).

Activation x activation products (attention's Q K^T and A V: ``W`` a dynamic tensor of shape
``x.shape[:-2] + [MW, MH]``) become ``dynamic_input = 1`` nodes with ``InferMinifloatMVAU(dynamic=True)``: one
matrix per group of ``x.shape[-2]`` vectors; their accumulator width is the worst case of the formats (no weights
to minimize it from); a threshold with negative channel signs is not fused (the streamed matrix cannot be negated)
and stays for ``InferMinifloatThresholding``. The default converts constant weights only.
``numInputVectors`` is the input's shape without the last axis (FINN's convention, batch included).

A depthwise convolution (``ExactMatMul`` fed by an ``Im2Col`` with ``depthwise = 1`` and a block-diagonal (K*C, C)
weight, passes/lowering/matrix.py) becomes ``MinifloatVVAU`` the same way (thresholds, negated channels), with the
(K, C) per-channel weights only: ``MW`` = K, ``MH`` = C.
"""

import numpy as np
from onnx import helper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.transformation.infer_shapes import InferShapes

import custom_ops  # noqa: F401  (registers MinifloatMVAU into FINN's registries)
from compiler.errors import UnsupportedNodeError
from custom_ops.general.common import threshold_initializer, threshold_ints
from custom_ops.minifloat_thresholding import convert_widths_of
from passes.requant_params import conversion_params
from passes.shared_thresholds import rows_are_shared

FPGADATAFLOW = "finn.custom_op.fpgadataflow"


class InferMinifloatMVAU(Transformation):
    """Convert lowered matrix products with constant weights (and with ``dynamic=True`` activation x activation
    products) into MinifloatMVAU nodes (module docstring)."""

    #: why a node of these op types can stay unmapped after this pass (listed by passes.convert_to_hw)
    UNMAPPED = {
        "ExactMatMul": "matrix product whose second operand is neither constant nor a (..., MW, MH) matrix per group",
        "Conv": ("convolution the lowering left in float (a float island): only group=1 and depthwise (group = "
                 "channels, depth multiplier 1) convolutions of quantized inputs and weights lower exactly"),
    }

    #: which following requantizers fuse into the MVAU: "always" (any on the last axis), "shared" (only one threshold
    #: row shared by every channel: a table of constants; per-channel requantizers stay standalone, where the
    #: folding chooses their style), "never"
    FUSE_POLICIES = ("always", "shared", "never")

    def __init__(self, dynamic=False, fuse="always"):
        super().__init__()
        self.dynamic = bool(dynamic)
        if fuse not in self.FUSE_POLICIES:
            raise ValueError(f"fuse must be one of {self.FUSE_POLICIES}, got {fuse!r}")
        self.fuse = fuse

    def apply(self, model):
        graph = model.graph
        modified = False
        for node in list(graph.node):
            if node.op_type != "ExactMatMul":
                continue
            w = model.get_initializer(node.input[1])
            in_shape = model.get_tensor_shape(node.input[0])
            dynamic = w is None
            if dynamic:
                w_shape = model.get_tensor_shape(node.input[1])
                if not self.dynamic or w_shape is None or len(in_shape) < 2 or \
                        list(w_shape[:-2]) != list(in_shape[:-2]) or w_shape[-2] != in_shape[-1]:
                    continue
                mw, mh = w_shape[-2], w_shape[-1]
            elif w.ndim != 2:
                continue
            else:
                mw, mh = w.shape
            op_type = "MinifloatMVAU"
            per_channel = None if dynamic else depthwise_weights(model, node, w)
            if per_channel is not None:
                op_type, w = "MinifloatVVAU", per_channel
                mw, mh = w.shape
            inst = getCustomOp(node)
            fx, fw = inst.formats()
            consumers = model.find_consumers(node.output[0]) or []
            thr = consumers[0] if len(consumers) == 1 and consumers[0].op_type == "MinifloatThreshold" else None
            acc_dt = model.get_tensor_datatype(node.output[0])
            inputs = [node.input[0]]
            if thr is not None:
                tinst = getCustomOp(thr)
                if tinst.get_nodeattr("channel_axis") % len(in_shape) != len(in_shape) - 1:
                    thr = None
                elif dynamic and any(sg < 0 for sg in tinst.get_nodeattr("channel_signs")):
                    thr = None
                elif self.fuse == "never" or (self.fuse == "shared" and
                                              not rows_are_shared(threshold_ints(model.get_initializer(thr.input[1])))):
                    thr = None
            if thr is not None:
                signs = list(tinst.get_nodeattr("channel_signs"))
                if signs and not dynamic:
                    w = self._negate_columns(np.asarray(w, dtype=np.float32), fw, signs, node)
                out_fmt = tinst.get_nodeattr("out_format")
                thresholds = threshold_ints(model.get_initializer(thr.input[1]))
                output = thr.output[0]
                no_act = 0
            else:
                out_fmt = acc_dt.name
                output = node.output[0]
                no_act = 1
            if dynamic:
                inputs.append(node.input[1])
            else:
                w_name = model.make_new_valueinfo_name()
                model.set_initializer(w_name, np.asarray(w, dtype=np.float32))
                model.set_tensor_datatype(w_name, fw.datatype)
                inputs.append(w_name)
            if not no_act:
                t_name = model.make_new_valueinfo_name()
                model.set_initializer(t_name, threshold_initializer(thresholds))
                inputs.append(t_name)
            mvau = helper.make_node(
                op_type, inputs, [output], domain=FPGADATAFLOW, backend="fpgadataflow", name=f"{op_type}_{node.name}",
                MW=int(mw), MH=int(mh), PE=1, SIMD=1, inputDataType=fx.qonnx_name, weightDataType=fw.qonnx_name,
                accDataType=acc_dt.name, outputDataType=out_fmt, noActivation=no_act, dynamic_input=int(dynamic),
                numInputVectors=[int(d) for d in in_shape[:-1]],
            )
            pos = list(graph.node).index(node)
            graph.node.insert(pos, mvau)
            graph.node.remove(node)
            if thr is not None:
                graph.node.remove(thr)
            modified = True
        if modified:
            model = model.transform(InferShapes())
            model = model.transform(GiveUniqueNodeNames())
        return model, False

    @staticmethod
    def _negate_columns(w, fmt, signs, node):
        if len(signs) == 1:
            signs = signs * w.shape[1]
        w = w.copy()
        allowed = set(float(v) for v in fmt.values())
        for c, s in enumerate(signs):
            if s < 0:
                col = -w[:, c]
                if not all(float(v) in allowed for v in col):
                    raise UnsupportedNodeError(
                        f"{node.name}: output channel {c} has a negative scale and its weights cannot be negated in "
                        f"{fmt.name} (asymmetric range); use a narrow-range integer or a minifloat weight format"
                    )
                w[:, c] = col
        return w


def depthwise_weights(model, node, w):
    """The (K, C) per-channel weights of a depthwise ``ExactMatMul`` (its input from an ``Im2Col`` with
    ``depthwise = 1``, its weight block-diagonal: W[k*C + c, c] = w[k, c], zero elsewhere), else None."""
    producer = model.find_producer(node.input[0])
    if producer is None or producer.op_type != "Im2Col" or not getCustomOp(producer).get_nodeattr("depthwise"):
        return None
    rows, c = w.shape
    if rows % c:
        return None
    blocks = np.asarray(w).reshape(rows // c, c, c)
    diagonal = blocks[:, np.arange(c), np.arange(c)]
    off = blocks.copy()
    off[:, np.arange(c), np.arange(c)] = 0
    return np.ascontiguousarray(diagonal) if not np.any(off) else None


def mvau_nodes(model):
    """The MinifloatMVAU nodes (any backend) of a model."""
    return [n for n in model.graph.node if n.op_type.startswith("MinifloatMVAU")]



def last_axis_thresholds(model, thr, shape):
    """For a ``MinifloatThreshold`` whose thresholds are per tensor or per channel of the last axis of ``shape``:
    (name of a new initializer with one threshold row per channel, channel signs per channel or []); else None."""
    inst = getCustomOp(thr)
    t = threshold_ints(model.get_initializer(thr.input[1]))
    per_tensor = t.shape[0] == 1
    if not per_tensor and inst.get_nodeattr("channel_axis") % len(shape) != len(shape) - 1:
        return None
    channels = int(shape[-1])
    signs = [int(s) for s in inst.get_nodeattr("channel_signs")]
    if per_tensor:
        t = np.repeat(t, channels, axis=0)
        signs = signs * channels
    t_name = model.make_new_valueinfo_name()
    model.set_initializer(t_name, threshold_initializer(t))
    return t_name, signs


class InferMinifloatThresholding(Transformation):
    """Standalone lowered ``MinifloatThreshold`` nodes (not fused into an MVAU) -> ``MinifloatThresholding``.

    Converted when the thresholds are per tensor or per channel along the last axis (the hardware streams the last
    axis as channels); the thresholds are expanded to one row per channel. Run after ``InferMinifloatMVAU``.
    With ``scale_bits`` and a requantizer that recorded its exact affine map, the node also gets the parameters of
    requantization by conversion (input 2, passes/requant_params.py) with ``scale_bits``-bit scale mantissas and
    their widths (``convertWidths``, for the estimates), so it can take any requantizer style (``requantStyle``; the
    folding chooses).
    """

    #: why a node of these op types can stay unmapped after this pass (listed by passes.convert_to_hw)
    UNMAPPED = {
        "MinifloatThreshold": ("requantizer with per-channel thresholds on a non-last axis (NCHW): needs NHWC "
                               "streamlining"),
    }

    def __init__(self, scale_bits=None):
        super().__init__()
        self.scale_bits = scale_bits

    def apply(self, model):
        graph = model.graph
        modified = False
        for node in list(graph.node):
            if node.op_type != "MinifloatThreshold":
                continue
            inst = getCustomOp(node)
            shape = model.get_tensor_shape(node.input[0])
            rows = last_axis_thresholds(model, node, shape)
            if rows is None:
                continue
            t_name, signs = rows
            channels = int(shape[-1])
            inputs, extra = [node.input[0], t_name], {}
            affine = inst.get_nodeattr("affine")
            if self.scale_bits is not None and affine:
                inputs.append(conversion_params(model, affine, channels, self.scale_bits))
                extra["convertRelu"] = inst.get_nodeattr("relu")
                extra["convertWidths"] = convert_widths_of(model.get_initializer(inputs[-1]))
            new = helper.make_node(
                "MinifloatThresholding", inputs, [node.output[0]], domain=FPGADATAFLOW,
                backend="fpgadataflow", name=f"MinifloatThresholding_{node.name}", NumChannels=channels, PE=1,
                inputDataType=model.get_tensor_datatype(node.input[0]).name,
                outputDataType=inst.get_nodeattr("out_format"), numInputVectors=[int(d) for d in shape[:-1]],
                **({"channel_signs": [int(s) for s in signs]} if signs else {}), **extra,
            )
            graph.node.insert(list(graph.node).index(node), new)
            graph.node.remove(node)
            modified = True
        if modified:
            model = model.transform(InferShapes())
            model = model.transform(GiveUniqueNodeNames())
        return model, False


class InferMinifloatAdd(Transformation):
    """``ExactAdd`` of two streams (residual add) + its ``MinifloatThreshold`` -> ``MinifloatAdd``.

    A constant operand (a ViT's positional embedding), broadcast to the stream's shape, becomes in1 with
    ``const_in1 = 1`` (streamed from a ROM in hardware). Converted when the dynamic operands have the same shape, the
    add's only consumer is a threshold on the last axis (or per tensor), and the coefficients fit 64 bits. Run before
    ``InferMinifloatThresholding``.
    """

    #: why a node of these op types can stay unmapped after this pass (listed by passes.convert_to_hw)
    UNMAPPED = {
        "ExactAdd": ("add with a constant operand (e.g. positional embedding) or a second consumer of the sum: no "
                     "hardware mapping yet"),
    }

    #: "always": the threshold fuses into the add (parallel comparators); "never": the add outputs its exact sum
    #: (``noActivation = 1``) and the threshold stays for ``InferMinifloatThresholding``: a standalone requantizer
    #: whose style (parallel or binary-search thresholds, conversion) the folding picks by cost
    FUSE_POLICIES = ("always", "never")

    def __init__(self, fuse="always"):
        super().__init__()
        if fuse not in self.FUSE_POLICIES:
            raise ValueError(f"fuse must be one of {self.FUSE_POLICIES}, got {fuse!r}")
        self.fuse = fuse

    def apply(self, model):
        graph = model.graph
        modified = False
        for node in list(graph.node):
            if node.op_type != "ExactAdd" or len(node.input) != 2:
                continue
            inputs = list(node.input)
            consts = [model.get_initializer(t) is not None for t in inputs]
            if all(consts):
                continue
            ainst = getCustomOp(node)
            coeffs = [int(k) for k in ainst.get_nodeattr("coeffs")]
            fmts = list(ainst.get_nodeattr("formats"))
            if consts[0]:  # the constant goes to in1 (the ROM-streamed operand)
                inputs, coeffs, fmts = inputs[::-1], coeffs[::-1], fmts[::-1]
            shape = model.get_tensor_shape(inputs[0])
            if shape is None:
                continue
            if any(consts):
                const = np.asarray(model.get_initializer(inputs[1]), dtype=np.float32)
                try:
                    const = np.broadcast_to(const, shape)
                except ValueError:
                    continue
                inputs[1] = model.make_new_valueinfo_name()
                model.set_initializer(inputs[1], np.ascontiguousarray(const))
            elif model.get_tensor_shape(inputs[1]) != shape:
                continue
            consumers = model.find_consumers(node.output[0]) or []
            if len(consumers) != 1 or consumers[0].op_type != "MinifloatThreshold":
                continue
            thr = consumers[0]
            tinst = getCustomOp(thr)
            if max(abs(k) for k in coeffs) >= 2**63:
                continue
            rows = last_axis_thresholds(model, thr, shape)
            if rows is None:
                continue
            t_name, signs = rows
            channels = int(shape[-1])
            fmts = [f.decode() if isinstance(f, bytes) else f for f in fmts]
            acc_dt = model.get_tensor_datatype(node.output[0]).name
            common = dict(domain=FPGADATAFLOW, backend="fpgadataflow", name=f"MinifloatAdd_{node.name}",
                          NumChannels=channels, PE=1, in0DataType=fmts[0], in1DataType=fmts[1], coeffs=coeffs,
                          accDataType=acc_dt, numInputVectors=[int(d) for d in shape[:-1]],
                          const_in1=int(any(consts)))
            if self.fuse == "never":  # the threshold (checked convertible above) stays for the thresholding pass
                model.del_initializer(t_name)
                new = helper.make_node("MinifloatAdd", inputs, [node.output[0]], outputDataType=acc_dt,
                                       noActivation=1, **common)
            else:
                new = helper.make_node("MinifloatAdd", [inputs[0], inputs[1], t_name], [thr.output[0]],
                                       outputDataType=tinst.get_nodeattr("out_format"),
                                       **({"channel_signs": signs} if signs else {}), **common)
                graph.node.remove(thr)
            graph.node.insert(list(graph.node).index(node), new)
            graph.node.remove(node)
            modified = True
        if modified:
            model = model.transform(InferShapes())
            model = model.transform(GiveUniqueNodeNames())
        return model, False


__all__ = ["InferMinifloatAdd", "InferMinifloatMVAU", "InferMinifloatThresholding", "mvau_nodes"]
