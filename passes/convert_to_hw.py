"""ConvertToHardware: the lowered graph -> minifinn hardware ops, every compute node mapped or named with its reason.

The conversion is a fixed sequence of passes (``HW_CONVERSION``): channels-last layout (``ConvertToNHWC``), softmax
and LayerNorm islands (``MinifloatSoftmax`` / ``MinifloatLayerNorm``), elementwise float islands such as GELU
(``MinifloatLUT`` tables), matrix products incl. attention's (``MinifloatMVAU``), residual and positional-embedding
adds (``MinifloatAdd``), standalone requantizers (``MinifloatThresholding``), sliding windows, max and global pooling
(``MinifloatConvInpGen`` / ``MinifloatMaxPool`` / ``MinifloatGlobalAccPool``), layout chains between hardware nodes
(``MinifloatReorder``), then ``AnnotateSharedThresholds`` for the estimates.

Every pass declares in ``UNMAPPED`` the op types it is responsible for and why a node of that type can stay; a node
left behind that is neither a hardware op nor host-side input quantization / output dequantization is reported with
that reason (``unmappable_nodes``), and ``ConvertToHardware`` raises ``UnmappableNodesError`` listing them all.
"""

from qonnx.transformation.base import Transformation

from compiler.errors import UnmappableNodesError
from passes.elementwise_tables import FoldElementwiseIntoTables
from passes.infer_hw import InferMinifloatAdd, InferMinifloatMVAU, InferMinifloatThresholding
from passes.infer_layernorm import InferMinifloatLayerNorm
from passes.infer_softmax import InferMinifloatSoftmax
from passes.infer_stream_ops import (
    InferMinifloatConvInpGen,
    InferMinifloatGlobalAccPool,
    InferMinifloatMaxPool,
    InferMinifloatReorder,
)
from passes.nhwc import ConvertToNHWC
from passes.shared_thresholds import AnnotateSharedThresholds

#: the conversion passes in order (factories: each run gets fresh instances)
HW_CONVERSION = (
    ConvertToNHWC,
    lambda: InferMinifloatSoftmax(strict=False),
    lambda: InferMinifloatLayerNorm(strict=False),
    FoldElementwiseIntoTables,
    lambda: InferMinifloatMVAU(dynamic=True),
    InferMinifloatAdd,
    InferMinifloatThresholding,
    InferMinifloatConvInpGen,
    InferMinifloatMaxPool,
    InferMinifloatGlobalAccPool,
    InferMinifloatReorder,
    AnnotateSharedThresholds,
)
HW_DOMAIN = "finn.custom_op.fpgadataflow"
HOST_INPUT_OPS = ("QuantizeToFormat",)
HOST_OUTPUT_OPS = ("Dequantize",)
HOST_LAYOUT_OPS = ("Flatten", "Reshape", "Transpose", "Identity")
UNKNOWN_REASON = "no minifinn or FINN hardware op for this op type"


def unmapped_reasons(passes=None):
    """{op type: why it can stay unmapped}, from the ``UNMAPPED`` declarations of the conversion passes."""
    reasons = {}
    for make in passes or HW_CONVERSION:
        reasons.update(getattr(make(), "UNMAPPED", {}))
    return reasons


def host_nodes(model):
    """Names of the nodes that run on the host: input quantization (``QuantizeToFormat`` and layout ops before it,
    fed only by graph inputs) and output dequantization (``Dequantize`` and layout ops after it, feeding only graph
    outputs)."""
    host = set()
    host_tensors = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer}
    for node in model.graph.node:  # topological order: the input side
        dyn = [t for t in node.input if t and model.get_initializer(t) is None]
        if node.op_type in HOST_INPUT_OPS + HOST_LAYOUT_OPS and all(t in host_tensors for t in dyn):
            host.add(node.name)
            host_tensors.update(node.output)
    out_tensors = {o.name for o in model.graph.output}
    for node in reversed(list(model.graph.node)):  # the output side
        if node.op_type in HOST_OUTPUT_OPS + HOST_LAYOUT_OPS and all(o in out_tensors for o in node.output):
            host.add(node.name)
            out_tensors.update(t for t in node.input if t)
    return host


def unmappable_nodes(model, reasons=None):
    """[(node name, op type, reason)] for nodes that are neither hardware ops nor host-side boundary ops."""
    reasons = unmapped_reasons() if reasons is None else reasons
    host = host_nodes(model)
    return [(node.name, node.op_type, reasons.get(node.op_type, UNKNOWN_REASON)) for node in model.graph.node
            if not node.domain.startswith(HW_DOMAIN) and node.name not in host]


class ConvertToHardware(Transformation):
    """Run ``HW_CONVERSION`` on a lowered graph; raise ``UnmappableNodesError`` naming every node (name, op type,
    reason) that keeps the graph from being one dataflow partition."""

    def apply(self, model):
        for make in HW_CONVERSION:
            model = model.transform(make())
        rows = unmappable_nodes(model)
        if rows:
            listing = "\n".join(f"  - {name} ({op}): {why}" for name, op, why in rows)
            raise UnmappableNodesError(
                f"{len(rows)} node(s) cannot be mapped to hardware, so the graph is not one dataflow partition:\n"
                f"{listing}\nOnly input quantization (QuantizeToFormat) and output dequantization (Dequantize) may "
                "stay on the host."
            )
        return model, False
