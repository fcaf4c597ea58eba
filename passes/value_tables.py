"""FoldValueRequantIntoTables: a requantizer of quantized values (one format to another, a clamp in between)
becomes a ``MinifloatLUT`` hardware op (a 2^bits table over the input codes).

Pattern in the lowered graph: ``ExactAdd(v)`` with one input (the integers ``k * v_int`` of a values tensor of at
most 8 bits, what the lowering emits for a quantizer on quantized values) whose only consumer is a
``MinifloatThreshold`` with one threshold row shared by every channel (a per-tensor requantizer: a ``QuantIdentity``
after a pooling or flatten, a ``torch.clamp`` / ReLU6 between two quantizers). The table is the threshold op's own
result on every input code, so ``MinifloatLUT`` equals the pair bit for bit.
"""

import numpy as np
from onnx import helper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.transformation.infer_shapes import InferShapes

import custom_ops  # noqa: F401  (registers MinifloatLUT)
from compiler.qonnx_formats import format_from_datatype
from custom_ops.general.common import threshold_ints
from custom_ops.general.threshold import apply_thresholds

FPGADATAFLOW = "finn.custom_op.fpgadataflow"


def requant_table(in_fmt, coeff, thresholds, signs, out_fmt):
    """Output values of ``out_values[#{i : sign * coeff * v_int >= T[0, i]}]`` for every input code (code order)."""
    codes = np.arange(2 ** in_fmt.bits)
    ints = np.round(in_fmt.decode(codes).astype(np.float64) / 2.0 ** in_fmt.lsb_exponent).astype(np.int64)
    acc = (int(coeff) * ints)[:, None]
    return apply_thresholds(acc, thresholds[:1], out_fmt.values(), -1, list(signs[:1]) or None)[:, 0]


class FoldValueRequantIntoTables(Transformation):
    """Per-tensor requantizers of <= 8-bit values -> ``MinifloatLUT`` (module docstring). Run before
    ``InferMinifloatThresholding``, which would otherwise take the threshold and leave the ``ExactAdd``."""

    def apply(self, model):
        graph = model.graph
        modified = False
        for add in list(graph.node):
            if add.op_type != "ExactAdd" or len(add.input) != 1 or model.get_initializer(add.input[0]) is not None:
                continue
            consumers = model.find_consumers(add.output[0]) or []
            if len(consumers) != 1 or consumers[0].op_type != "MinifloatThreshold":
                continue
            thr = consumers[0]
            t = threshold_ints(model.get_initializer(thr.input[1]))
            if t.shape[0] != 1:
                continue
            in_dt = model.get_tensor_datatype(add.input[0])
            if in_dt.bitwidth() > 8 or not (in_dt.name.startswith("FLOAT<") or in_dt.is_integer()):
                continue
            tinst = getCustomOp(thr)
            in_fmt = format_from_datatype(in_dt.name, add.name)
            out_name = tinst.get_nodeattr("out_format")
            out_fmt = format_from_datatype(out_name, thr.name)
            coeff = int(getCustomOp(add).get_nodeattr("coeffs")[0])
            table = requant_table(in_fmt, coeff, t, [int(s) for s in tinst.get_nodeattr("channel_signs")], out_fmt)
            shape = model.get_tensor_shape(add.input[0])
            lut = helper.make_node(
                "MinifloatLUT", [add.input[0]], [thr.output[0]], domain=FPGADATAFLOW, backend="fpgadataflow",
                name=f"MinifloatLUT_{thr.name}", NumChannels=int(shape[-1]), PE=1, inputDataType=in_dt.name,
                outputDataType=out_name, table=[float(v) for v in table], numInputVectors=[int(d) for d in shape[:-1]],
            )
            graph.node.insert(list(graph.node).index(add), lut)
            graph.node.remove(add)
            graph.node.remove(thr)
            modified = True
        if modified:
            model = model.transform(InferShapes()).transform(GiveUniqueNodeNames())
        return model, False
