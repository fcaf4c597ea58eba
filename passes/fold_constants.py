"""FoldConstantSubgraphs: qonnx' ``FoldConstants`` in one sweep.

Every node whose inputs are all constants (initializers, or outputs folded earlier in the sweep), every ``Shape`` of
a tensor with a known shape and every node without inputs is executed (onnxruntime, one node at a time, as qonnx
does) and replaced by an initializer holding its output; op types in ``exclude_op_types`` (the quantizers, whose
formats minifinn reads) stay. The result is qonnx' ``FoldConstants`` result.

Why not qonnx' own: it folds one node per application and re-runs shape inference and allocates a full execution
context (every tensor, weights included) after each one (qonnx issue 104: it avoids editing the node list while
iterating it). For a torchvision ViT-B/32 export (350 MB of weights, ~90 foldable Shape/Gather/Concat/Expand
nodes) that is ~90 serializations of the whole model: ~12 of the ~20 CPU minutes of the whole compile. Here the
nodes are collected in graph order and removed after the sweep, and shapes are inferred once.
"""

import numpy as np
import onnxruntime as rt
from onnx import helper
from onnx.helper import np_dtype_to_tensor_dtype
from qonnx.custom_op.registry import is_custom_op
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes


def _execute(node, inputs, opset):
    """The outputs of a standard ONNX node on the numpy arrays ``inputs`` (one per node input, None for an empty
    input name)."""
    feeds = {t: v for t, v in zip(node.input, inputs) if t}
    graph = helper.make_graph(
        [node], "fold", [helper.make_tensor_value_info(t, np_dtype_to_tensor_dtype(v.dtype), v.shape)
                         for t, v in feeds.items()],
        [helper.make_empty_tensor_value_info(o) for o in node.output if o])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 10)
    return rt.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


class FoldConstantSubgraphs(Transformation):
    """Fold constant subgraphs in one sweep (module docstring); returns ``(model, False)``."""

    def __init__(self, exclude_op_types=("Quant", "BipolarQuant")):
        super().__init__()
        self.exclude_op_types = tuple(exclude_op_types)

    def apply(self, model):
        opset = next((o.version for o in model.model.opset_import if o.domain in ("", "ai.onnx")), 13)
        folded, values = [], {}

        def const(t):
            if t in values:
                return values[t]
            value = model.get_initializer(t)
            return None if value is None else np.asarray(value)

        for node in model.graph.node:
            if node.op_type in self.exclude_op_types or is_custom_op(node.domain, node.op_type):
                continue
            inputs = [const(t) if t else None for t in node.input]
            if node.op_type == "Shape" and inputs[0] is None:
                shape = model.get_tensor_shape(node.input[0])
                if shape is None:
                    continue
                inputs[0] = np.zeros(shape, dtype=np.float32)  # Shape reads the shape only
            elif any(v is None for t, v in zip(node.input, inputs) if t):
                continue
            outs = _execute(node, inputs, opset)
            for name, value in zip([o for o in node.output if o], outs):
                values[name] = np.asarray(value)
            folded.append(node)
        for node in folded:
            model.graph.node.remove(node)
        for name, value in values.items():
            model.set_initializer(name, value)
        if folded:
            model = model.transform(InferShapes())
        return model, False
