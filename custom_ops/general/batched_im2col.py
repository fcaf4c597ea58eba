"""BatchedIm2Col: qonnx' ``Im2Col`` whose shape inference keeps the batch dimension.

qonnx' Im2Col infers its output shape with batch 1 and its execution is only correct for batch 1 (the batch is
interleaved into the patch axis for N > 1): FINN graphs run one image at a time. This op runs qonnx' execution image
by image. ``passes.lower.set_batch_size`` swaps Im2Col nodes to this op in the copy it makes for batched
execution, so the lowered graph itself keeps qonnx' op for FINN's conversion passes.
"""

import numpy as np
from qonnx.custom_op.general.im2col import Im2Col


class BatchedIm2Col(Im2Col):
    def make_shape_compatible_op(self, model):
        node = super().make_shape_compatible_op(model)
        batch = int(self.get_nodeattr("input_shape").strip("()").split(",")[0])
        for attr in node.attribute:
            if attr.name == "shape":
                attr.ints[0] = batch
        return node

    def execute_node(self, context, graph):
        node = self.onnx_node
        x = context[node.input[0]]
        outs = []
        for image in x:
            context[node.input[0]] = image[None]
            super().execute_node(context, graph)
            outs.append(context[node.output[0]])
        context[node.input[0]] = x
        context[node.output[0]] = np.concatenate(outs)
