"""FoldTransposeIntoFloatQuantInit: qonnx' ``FoldTransposeIntoQuantInit`` for ``FloatQuant`` weight quantizers."""

import numpy as np
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import RemoveUnusedTensors
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name

from compiler.errors import UnsupportedNodeError
from compiler.qonnx_formats import is_const_quant


class FoldTransposeIntoFloatQuantInit(Transformation):
    """Fold ``Transpose(FloatQuant(constant weight))`` into the quantizer: transpose the weight and every
    non-scalar parameter (the per-channel scale) and let the quantizer produce the transposed tensor."""

    def apply(self, model):
        modified = False
        for node in list(model.graph.node):
            if node.op_type != "Transpose":
                continue
            producer = model.find_producer(node.input[0])
            if producer is None or producer.op_type != "FloatQuant" or not is_const_quant(model, producer):
                continue
            if len(model.find_consumers(producer.output[0])) != 1:
                continue  # the untransposed weight is used elsewhere too
            x = model.get_initializer(producer.input[0])
            perm_attr = get_by_name(node.attribute, "perm")
            perm = list(perm_attr.ints) if perm_attr is not None else list(range(x.ndim))[::-1]
            for idx, name in enumerate(producer.input):
                arr = model.get_initializer(name)
                if idx > 0 and arr.size == 1:
                    continue  # scalars broadcast either way
                if arr.ndim > len(perm):
                    raise UnsupportedNodeError(
                        f"{producer.name}: input {name} has {arr.ndim} dims, more than the {len(perm)}-dim perm of "
                        f"the following Transpose {node.name}"
                    )
                arr = arr.reshape((1,) * (len(perm) - arr.ndim) + arr.shape)
                new_name = model.make_new_valueinfo_name()
                model.set_initializer(new_name, np.ascontiguousarray(arr.transpose(perm)))
                producer.input[idx] = new_name
            producer.output[0] = node.output[0]
            model.graph.node.remove(node)
            modified = True
        if modified:
            model = model.transform(RemoveUnusedTensors())
            model = model.transform(InferShapes())
        return model, modified
