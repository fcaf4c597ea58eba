"""FoldElementwiseIntoTables: a float island that is an elementwise function of one quantized tensor becomes a
``MinifloatLUT`` hardware op (a 2^bits table over the input codes).

Pattern in the lowered graph: ``Dequantize(v, s)`` (values input) -> a chain of elementwise float ops, each with
one dynamic input and otherwise scalar constants (Gelu, Erf, Tanh, Sigmoid, Relu, Exp, Softplus, Abs, Neg, and
Mul/Add/Sub/Div/Pow by scalars) -> ``QuantizeToFormat(s2)``. The table is computed by running exactly these nodes
with onnxruntime (float32, as QONNX does) on all 2^bits input values and quantizing with the output format's own
quantizer, so ``MinifloatLUT`` equals the island bit for bit. Softmax / LayerNorm (reductions over a row) are not
elementwise and stay.
"""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.transformation.infer_shapes import InferShapes

import custom_ops  # noqa: F401  (registers MinifloatLUT)
from compiler.qonnx_formats import format_from_datatype

UNARY = {"Gelu", "Erf", "Tanh", "Sigmoid", "Relu", "Exp", "Softplus", "Abs", "Neg", "Identity"}
SCALAR_BINARY = {"Mul", "Add", "Sub", "Div", "Pow"}


def _elementwise_chain(model, start):
    """Nodes from ``start`` (the Dequantize's consumer) to the QuantizeToFormat, or None if not elementwise."""
    chain, node = [], start
    while node is not None and node.op_type != "QuantizeToFormat":
        if node.op_type in UNARY:
            pass
        elif node.op_type in SCALAR_BINARY:
            consts = [model.get_initializer(t) for t in node.input]
            dynamic = [t for t, c in zip(node.input, consts) if c is None]
            if len(dynamic) != 1 or any(c is not None and np.asarray(c).size != 1 for c in consts):
                return None
        else:
            return None
        consumers = model.find_consumers(node.output[0]) or []
        if len(consumers) != 1:
            return None
        chain.append(node)
        node = consumers[0]
    return (chain, node) if node is not None and chain else None


def island_table(model, chain, in_fmt, in_scale, quant):
    """Output values of the island for every input code (code order)."""
    codes = np.arange(2 ** in_fmt.bits)
    x = (in_fmt.decode(codes).astype(np.float32) * np.float32(in_scale)).astype(np.float32)
    inputs = [helper.make_tensor_value_info(chain[0].input[0] if model.get_initializer(chain[0].input[0]) is None
                                            else chain[0].input[1], TensorProto.FLOAT, [len(codes)])]
    out_name = chain[-1].output[0]
    inits = []
    for node in chain:
        for t in node.input:
            c = model.get_initializer(t)
            if c is not None:
                inits.append(onnx.numpy_helper.from_array(np.asarray(c), t))
    graph = helper.make_graph([n for n in chain], "island", inputs,
                              [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [len(codes)])], inits)
    opset = [o for o in model.model.opset_import if o.domain in ("", "ai.onnx")]
    onnx_model = helper.make_model(graph, opset_imports=opset or [helper.make_opsetid("", 20)])
    sess = ort.InferenceSession(onnx_model.SerializeToString())
    y = sess.run(None, {inputs[0].name: x})[0].astype(np.float32)
    out_fmt = format_from_datatype(getCustomOp(quant).get_nodeattr("format"), quant.name)
    scale = np.asarray(model.get_initializer(quant.input[1]), dtype=np.float32)
    return out_fmt.quantize(y / scale)


class FoldElementwiseIntoTables(Transformation):
    """Elementwise float islands of one quantized tensor -> ``MinifloatLUT`` (module docstring)."""

    #: why a node of these op types can stay unmapped after this pass (listed by passes.convert_to_hw)
    UNMAPPED = {
        "Gelu": "float island that is not a function of one quantized tensor (no table possible)",
    }

    def apply(self, model):
        graph = model.graph
        modified = False
        for deq in list(graph.node):
            if deq.op_type != "Dequantize" or getCustomOp(deq).get_nodeattr("input_kind") != "values":
                continue
            scale = model.get_initializer(deq.input[1])
            if scale is None or np.asarray(scale).size != 1:
                continue
            consumers = model.find_consumers(deq.output[0]) or []
            if len(consumers) != 1:
                continue
            found = _elementwise_chain(model, consumers[0])
            if found is None:
                continue
            chain, quant = found
            in_dt = model.get_tensor_datatype(deq.input[0])
            if not (in_dt.name.startswith("FLOAT<") or in_dt.name.startswith(("INT", "UINT"))) or in_dt.bitwidth() > 8:
                continue
            in_fmt = format_from_datatype(in_dt.name, deq.name)
            table = island_table(model, chain, in_fmt, float(np.asarray(scale).ravel()[0]), quant)
            shape = model.get_tensor_shape(deq.input[0])
            lut = helper.make_node(
                "MinifloatLUT", [deq.input[0]], [quant.output[0]], domain="finn.custom_op.fpgadataflow",
                backend="fpgadataflow", name=f"MinifloatLUT_{chain[0].name}", NumChannels=int(shape[-1]), PE=1,
                inputDataType=in_dt.name, outputDataType=getCustomOp(quant).get_nodeattr("format"),
                table=[float(v) for v in table], numInputVectors=[int(d) for d in shape[:-1]],
            )
            graph.node.insert(list(graph.node).index(deq), lut)
            for node in [deq, *chain, quant]:
                graph.node.remove(node)
            modified = True
        if modified:
            model = model.transform(InferShapes()).transform(GiveUniqueNodeNames())
        return model, False
