"""FoldConstantsAtOnce: qonnx' ``FoldConstants`` folding every eligible node in one pass.

The nodes folded and the values they fold to are those of qonnx' ``FoldConstants(exclude_op_types)``: a node not of
an excluded type whose inputs are all initializers, or that has no input, or a ``Shape`` of a tensor with a known
shape, is executed (``qonnx.core.onnx_exec.execute_node``) and its output becomes an initializer. qonnx folds one
node per ``apply``, then re-infers the shapes of the whole model and allocates a full execution context; on a model
with ~90 such nodes and 350 MB of weights (ViT-B/32's export: the attention's Shape/Gather/Concat chains) that is
~26 minutes. Here one pass walks the nodes in graph (topological) order, so a chain folds in one pass (a folded
output is an initializer for the nodes after it), builds each node's context from its own inputs only, and infers
shapes once per pass.
"""

import numpy as np
import qonnx.core.onnx_exec as oxe
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes


class FoldConstantsAtOnce(Transformation):
    """Replace the outputs of the nodes with constant inputs by initializers (module doc); ``exclude_op_types``
    are never folded (e.g. the weight quantizers, whose format the passes need)."""

    def __init__(self, exclude_op_types=("Quant", "BipolarQuant")):
        super().__init__()
        self.exclude_op_types = tuple(exclude_op_types)

    def _eligible(self, model, node):
        if node.op_type in self.exclude_op_types:
            return False
        if not node.input:
            return True
        if node.op_type == "Shape" and model.get_tensor_shape(node.input[0]) is not None:
            return True
        return all(not name or model.get_initializer(name) is not None for name in node.input)

    def apply(self, model):
        opset_version = model.model.opset_import[0].version
        folded = []
        for node in model.graph.node:
            if not self._eligible(model, node):
                continue
            context = {}
            for name in node.input:
                if not name:
                    continue
                value = model.get_initializer(name)
                if value is None:  # the input of a Shape node: only its shape is read
                    value = np.zeros(model.get_tensor_shape(name), dtype=np.float32)
                else:
                    model.get_tensor_shape(name, fix_missing_init_shape=True)
                context[name] = value
            for name in node.output:
                shape = model.get_tensor_shape(name)
                context[name] = np.zeros(shape if shape is not None else (), dtype=np.float32)
            oxe.execute_node(node, context, model.graph, opset_version=opset_version)
            model.set_initializer(node.output[0], context[node.output[0]])
            folded.append(node)
        for node in folded:
            model.graph.node.remove(node)
        if folded:
            model = model.transform(InferShapes())
        return model, bool(folded)
