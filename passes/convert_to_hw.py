"""ConvertToHardware: the lowered graph -> minifinn hardware ops, every compute node mapped or named with its reason.

The conversion is a fixed sequence of passes (``hw_conversion``): channels-last layout (``ConvertToNHWC``), softmax
and LayerNorm islands (``MinifloatSoftmax`` / ``MinifloatLayerNorm``), elementwise float islands such as GELU and
per-tensor requantizers of quantized values, e.g. a clamp between two quantizers (``MinifloatLUT`` tables), matrix
products incl. attention's (``MinifloatMVAU``), residual and positional-embedding adds (``MinifloatAdd``),
standalone requantizers (``MinifloatThresholding``), sliding windows, max and global pooling
(``MinifloatConvInpGen`` / ``MinifloatMaxPool`` / ``MinifloatGlobalAccPool``), layout chains between hardware nodes
(``MinifloatReorder``), then ``AnnotateSharedThresholds`` for the estimates.

Requantizers: one shared threshold row (per-tensor scales: residual adds, attention's products) stays inside the
producing op as constants; per-channel requantizers (after linear layers with per-channel weight scales, LayerNorms
with per-channel gamma/beta) become standalone ``MinifloatThresholding`` nodes carrying both the thresholds and the
parameters of conversion with ``scale_bits``-bit scale mantissas, so the resource-aware folding picks their style
(parallel or binary-search thresholds, or conversion) by cost.

Every pass declares in ``UNMAPPED`` the op types it is responsible for and why a node of that type can stay; a node
left behind that is neither a hardware op nor host-side input quantization / output dequantization is reported with
that reason (``unmappable_nodes``), and ``ConvertToHardware`` raises ``UnmappableNodesError`` with the root causes
first (``root_causes``: the unmapped nodes no other unmapped node feeds, one line per op type and reason) and the
full list on the error's ``rows`` (build.log has it once).
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
    RemoveIntegerCasts,
)
from passes.nhwc import ConvertToNHWC
from passes.requant_params import DEFAULT_SCALE_BITS
from passes.shared_thresholds import AnnotateSharedThresholds
from passes.value_tables import FoldValueRequantIntoTables


def hw_conversion(scale_bits=DEFAULT_SCALE_BITS):
    """The conversion passes in order, fresh instances."""
    return (
        ConvertToNHWC(),
        InferMinifloatSoftmax(strict=False),
        InferMinifloatLayerNorm(strict=False, split="per_channel"),
        FoldElementwiseIntoTables(),
        FoldValueRequantIntoTables(),
        InferMinifloatMVAU(dynamic=True, fuse="never"),
        InferMinifloatAdd(fuse="never"),
        InferMinifloatThresholding(scale_bits=scale_bits),
        InferMinifloatConvInpGen(),
        InferMinifloatMaxPool(),
        InferMinifloatGlobalAccPool(),
        RemoveIntegerCasts(),
        InferMinifloatReorder(),
        AnnotateSharedThresholds(),
    )


HW_DOMAIN = "finn.custom_op.fpgadataflow"
HOST_INPUT_OPS = ("QuantizeToFormat",)
HOST_OUTPUT_OPS = ("Dequantize",)
HOST_LAYOUT_OPS = ("Flatten", "Reshape", "Transpose", "Identity")
UNKNOWN_REASON = "no minifinn or FINN hardware op for this op type"


def unmapped_reasons(passes=None):
    """{op type: why it can stay unmapped}, from the ``UNMAPPED`` declarations of the conversion passes."""
    reasons = {}
    for transformation in passes or hw_conversion():
        reasons.update(getattr(transformation, "UNMAPPED", {}))
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


#: a message lists every unmapped node up to this many, the root causes only above it
MAX_LISTED_NODES = 20


def root_causes(model, rows):
    """The unmapped nodes ``rows`` (``unmappable_nodes``) grouped by cause, roots first: [(op type, reason, count,
    first node name, root)] where ``root`` is True for groups of nodes that no other unmapped node feeds (the places
    to fix; the others are downstream of them)."""
    unmapped = {name for name, _, _ in rows}
    producer = {o: n.name for n in model.graph.node for o in n.output}
    fed = {n.name for n in model.graph.node
           if n.name in unmapped and any(producer.get(t) in unmapped for t in n.input if t)}
    groups = {}
    for name, op, why in rows:
        key = (name not in fed, op, why)
        if key not in groups:
            groups[key] = [0, name]
        groups[key][0] += 1
    ordered = sorted(groups.items(), key=lambda kv: (not kv[0][0], -kv[1][0]))
    return [(op, why, count, first, root) for (root, op, why), (count, first) in ordered]


def unmappable_message(model, rows):
    """The ``UnmappableNodesError`` text for ``rows``: the causes (roots first), every node when few."""
    lines = [f"{len(rows)} node(s) cannot be mapped to hardware, so the graph is not one dataflow partition."]
    causes = root_causes(model, rows)
    lines.append("Root causes (unmapped nodes no other unmapped node feeds; fix these first):")
    lines += [f"  - {op} x{count} (first: {first}): {why}" for op, why, count, first, root in causes if root]
    downstream = [c for c in causes if not c[4]]
    if downstream:
        lines.append(f"Downstream of them ({sum(c[2] for c in downstream)} node(s)):")
        lines += [f"  - {op} x{count} (first: {first}): {why}" for op, why, count, first, _ in downstream]
    if len(rows) <= MAX_LISTED_NODES:
        lines.append("Nodes:")
        lines += [f"  - {name} ({op}): {why}" for name, op, why in rows]
    lines.append("Only input quantization (QuantizeToFormat) and output dequantization (Dequantize) may stay on "
                 "the host.")
    return "\n".join(lines)


class ConvertToHardware(Transformation):
    """Run ``hw_conversion(scale_bits)`` on a lowered graph; raise ``UnmappableNodesError`` naming every node (name,
    op type, reason) that keeps the graph from being one dataflow partition."""

    def __init__(self, scale_bits=DEFAULT_SCALE_BITS):
        super().__init__()
        self.scale_bits = scale_bits

    def apply(self, model):
        for transformation in hw_conversion(self.scale_bits):
            model = model.transform(transformation)
        rows = unmappable_nodes(model)
        if rows:
            raise UnmappableNodesError(unmappable_message(model, rows), rows=rows)
        return model, False
