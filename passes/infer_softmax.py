"""InferMinifloatSoftmax: the lowered graph's softmax float island becomes a ``MinifloatSoftmax`` hardware op.

Pattern: ``Dequantize(v, s_in)`` (``input_kind = "values"``, scalar constant ``s_in``, ``v`` of a <= 8-bit
minifloat/integer format) -> ``Softmax(axis = last)`` -> ``QuantizeToFormat(s_out, F)`` (scalar constant
``s_out > 0``, the Softmax's only consumer). The three nodes are replaced by one ``MinifloatSoftmax`` from ``v`` to
the quantizer's output (``NumChannels`` = row length, ``numInputVectors`` = the leading dimensions, PE = 1); the
Dequantize stays when something else reads it. ``mantissa_bits`` / ``align_bits`` set the op's table precision (see
custom_ops/minifloat_softmax.py for the contract and the measured effect).

A Softmax that does not fit (other axis, non-scalar or dynamic scale, no quantizer around it, wide input format)
raises ``UnmappableSoftmaxError`` naming the node, unless ``strict=False``, which leaves it in place.
"""

from onnx import helper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes

import custom_ops  # noqa: F401  (registers MinifloatSoftmax)
from compiler.errors import UnmappableSoftmaxError
from passes.initializers import scalar_initializer


def _softmax_axis(model, node, rank):
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    opset = max([o.version for o in model.model.opset_import if o.domain in ("", "ai.onnx")] or [13])
    axis = attrs.get("axis", -1 if opset >= 13 else 1)
    return int(axis) % rank


class InferMinifloatSoftmax(Transformation):
    """Softmax islands -> ``MinifloatSoftmax`` (module docstring); ``strict`` raises on an island that does not fit."""

    #: why a node of these op types can stay unmapped after this pass (listed by passes.convert_to_hw)
    UNMAPPED = {
        "Softmax": ("softmax that InferMinifloatSoftmax could not map (not Dequantize -> Softmax(last axis) -> "
                    "QuantizeToFormat with scalar scales)"),
    }

    def __init__(self, mantissa_bits=12, align_bits=12, strict=True):
        super().__init__()
        self.mantissa_bits, self.align_bits, self.strict = int(mantissa_bits), int(align_bits), strict

    def _island(self, model, sm):
        """(dequantize node, quantizer node, s_in, s_out) of a mappable island; raises when it does not fit."""
        where = f"Softmax node {sm.name or sm.output[0]}"
        shape = model.get_tensor_shape(sm.input[0])
        if shape is None:
            raise UnmappableSoftmaxError(f"{where}: input shape unknown; run InferShapes first")
        axis = _softmax_axis(model, sm, len(shape))
        if axis != len(shape) - 1:
            raise UnmappableSoftmaxError(f"{where}: softmax over axis {axis} of a rank-{len(shape)} tensor; "
                                         "MinifloatSoftmax supports the last axis only")
        deq = model.find_producer(sm.input[0])
        if deq is None or deq.op_type != "Dequantize" or getCustomOp(deq).get_nodeattr("input_kind") != "values":
            found = "a graph input" if deq is None else f"{deq.op_type} {deq.name}"
            raise UnmappableSoftmaxError(f"{where}: input comes from {found}; supported: Dequantize of a values "
                                         "tensor (the lowered graph's float island)")
        s_in = scalar_initializer(model, deq.input[1])
        if s_in is None:
            raise UnmappableSoftmaxError(f"{where}: input scale {deq.input[1]} of {deq.name} is not a finite "
                                         "scalar constant; supported: one scale per tensor")
        in_dt = model.get_tensor_datatype(deq.input[0])
        if not in_dt.name.startswith(("FLOAT<", "INT", "UINT")) or in_dt.bitwidth() > 8:
            raise UnmappableSoftmaxError(f"{where}: input datatype {in_dt.name}; supported: minifloat or integer "
                                         "formats of at most 8 bits (one exp table entry per code)")
        consumers = model.find_consumers(sm.output[0]) or []
        if len(consumers) != 1 or consumers[0].op_type != "QuantizeToFormat":
            found = ", ".join(f"{c.op_type} {c.name}" for c in consumers) or "a graph output"
            raise UnmappableSoftmaxError(f"{where}: output goes to {found}; supported: exactly one "
                                         "QuantizeToFormat (the output quantizer)")
        quant = consumers[0]
        s_out = scalar_initializer(model, quant.input[1])
        if s_out is None or s_out <= 0:
            raise UnmappableSoftmaxError(f"{where}: output scale {quant.input[1]} of {quant.name} is not a positive "
                                         "scalar constant; supported: one positive scale per tensor")
        return deq, quant, s_in, s_out

    def apply(self, model):
        graph = model.graph
        modified = False
        for sm in [n for n in graph.node if n.op_type == "Softmax"]:
            try:
                deq, quant, s_in, s_out = self._island(model, sm)
            except UnmappableSoftmaxError:
                if self.strict:
                    raise
                continue
            shape = model.get_tensor_shape(deq.input[0])
            op = helper.make_node(
                "MinifloatSoftmax", [deq.input[0]], [quant.output[0]], domain="finn.custom_op.fpgadataflow",
                backend="fpgadataflow", name=f"MinifloatSoftmax_{sm.name}", NumChannels=int(shape[-1]), PE=1,
                inputDataType=model.get_tensor_datatype(deq.input[0]).name,
                outputDataType=getCustomOp(quant).get_nodeattr("format"), in_scale=s_in, out_scale=s_out,
                mantissaBits=self.mantissa_bits, alignBits=self.align_bits,
                numInputVectors=[int(d) for d in shape[:-1]],
            )
            getCustomOp(op).precision()  # the precision attributes are checked here, naming the node
            graph.node.insert(list(graph.node).index(sm), op)
            removed = [sm, quant]
            if len(model.find_consumers(deq.output[0]) or []) == 1:
                removed.append(deq)
            for node in removed:
                graph.node.remove(node)
            modified = True
        if modified:
            model = model.transform(InferShapes())
        return model, False
