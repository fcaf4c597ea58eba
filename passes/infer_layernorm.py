"""InferMinifloatLayerNorm: the lowered graph's LayerNorm islands -> ``MinifloatLayerNorm`` hardware ops.

Pattern: ``Dequantize(codes, scalar s_in, input_kind "values") -> LayerNormalization(axis = -1, gamma, beta,
epsilon) -> QuantizeToFormat(scalar s_out)``. The op's thresholds are the output quantizer's exact thresholds for
``fmt.round((gamma_i * z_i / 2^R + beta_i) / s_out)`` (``requant_thresholds``), its ``epsTerm`` is
``round(epsilon * D^2 / u^2)`` with ``u = s_in * 2**lsb_exponent`` (custom_ops/minifloat_layernorm.py states the
contract). ``strict=False`` leaves islands it cannot map in place (``step_convert_to_hw`` then lists them).

``split="per_channel"``: when gamma/beta make the thresholds differ between channels, the op outputs z itself
(``noActivation = 1``, ``INTZ`` with Z from ``z_range``) and a lowered ``MinifloatThreshold`` on z (thresholds,
channel signs and the exact affine map, as the lowering writes them) follows, which ``InferMinifloatThresholding``
turns into a standalone requantizer whose style the folding chooses; with one shared row (or ``split="never"``)
the thresholds stay inside the op.
"""

from fractions import Fraction

import numpy as np
from onnx import helper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.transformation.infer_shapes import InferShapes

import custom_ops  # noqa: F401
from compiler.errors import UnmappableLayerNormError
from compiler.qonnx_formats import format_from_datatype, qonnx_datatype
from custom_ops.general import DOMAIN
from custom_ops.general.common import bits_for_range, threshold_ints
from custom_ops.minifloat_layernorm import z_range
from passes.initializers import scalar_initializer
from passes.shared_thresholds import rows_are_shared
from passes.thresholds import requant_affine, requant_thresholds


class InferMinifloatLayerNorm(Transformation):
    """LayerNorm islands -> ``MinifloatLayerNorm`` (module docstring); ``strict`` raises on an island that does not
    fit."""

    #: why a node of these op types can stay unmapped after this pass (listed by passes.convert_to_hw)
    UNMAPPED = {
        "LayerNormalization": ("LayerNorm that InferMinifloatLayerNorm could not map (not Dequantize -> "
                               "LayerNormalization(last axis, constant gamma/beta) -> QuantizeToFormat with scalar "
                               "scales, or an input format with 6 exponent bits, whose epsilon term leaves 64 bits; "
                               "InferMinifloatLayerNorm(strict=True) says which)"),
    }

    SPLIT_POLICIES = ("never", "per_channel")

    def __init__(self, r_bits=16, strict=True, split="never"):
        super().__init__()
        if split not in self.SPLIT_POLICIES:
            raise ValueError(f"split must be one of {self.SPLIT_POLICIES}, got {split!r}")
        self.r_bits, self.strict, self.split = int(r_bits), strict, split

    def _island(self, model, ln):
        where = f"LayerNormalization node {ln.name or ln.output[0]}"
        shape = model.get_tensor_shape(ln.input[0])
        if shape is None:
            raise UnmappableLayerNormError(f"{where}: input shape unknown; run InferShapes first")
        attrs = {a.name: helper.get_attribute_value(a) for a in ln.attribute}
        axis = int(attrs.get("axis", -1)) % len(shape)
        if axis != len(shape) - 1:
            raise UnmappableLayerNormError(f"{where}: normalizes from axis {axis} of a rank-{len(shape)} tensor; "
                                           "MinifloatLayerNorm supports the last axis only")
        d = int(shape[-1])
        gamma = model.get_initializer(ln.input[1]) if len(ln.input) > 1 else None
        beta = model.get_initializer(ln.input[2]) if len(ln.input) > 2 and ln.input[2] else np.zeros(d, np.float32)
        if gamma is None or beta is None:
            raise UnmappableLayerNormError(f"{where}: gamma/beta are not constant initializers")
        deq = model.find_producer(ln.input[0])
        if deq is None or deq.op_type != "Dequantize" or getCustomOp(deq).get_nodeattr("input_kind") != "values":
            found = "a graph input" if deq is None else f"{deq.op_type} {deq.name}"
            raise UnmappableLayerNormError(f"{where}: input comes from {found}; supported: Dequantize of a values "
                                           "tensor (the lowered graph's float island)")
        s_in = scalar_initializer(model, deq.input[1])
        if s_in is None or s_in <= 0:
            raise UnmappableLayerNormError(f"{where}: input scale {deq.input[1]} is not a positive scalar constant")
        consumers = model.find_consumers(ln.output[0]) or []
        if len(consumers) != 1 or consumers[0].op_type != "QuantizeToFormat":
            found = ", ".join(f"{c.op_type} {c.name}" for c in consumers) or "a graph output"
            raise UnmappableLayerNormError(f"{where}: output goes to {found}; supported: exactly one "
                                           "QuantizeToFormat (the output quantizer)")
        quant = consumers[0]
        s_out = scalar_initializer(model, quant.input[1])
        if s_out is None or s_out <= 0:
            raise UnmappableLayerNormError(f"{where}: output scale {quant.input[1]} is not a positive scalar constant")
        eps = float(np.float32(attrs.get("epsilon", 1e-5)))
        return deq, quant, s_in, s_out, np.broadcast_to(gamma, (d,)), np.broadcast_to(beta, (d,)), eps

    def apply(self, model):
        graph = model.graph
        modified = False
        for ln in [n for n in graph.node if n.op_type == "LayerNormalization"]:
            try:
                deq, quant, s_in, s_out, gamma, beta, eps = self._island(model, ln)
            except UnmappableLayerNormError:
                if self.strict:
                    raise
                continue
            shape = model.get_tensor_shape(deq.input[0])
            d = int(shape[-1])
            in_dt = model.get_tensor_datatype(deq.input[0]).name
            fin = format_from_datatype(in_dt, deq.name)
            ofmt_name = getCustomOp(quant).get_nodeattr("format")
            ofmt = format_from_datatype(ofmt_name, quant.name)
            u = Fraction(float(np.float32(s_in))) * Fraction(2) ** fin.lsb_exponent
            eps_term = max(1, round(Fraction(eps) * d * d / (u * u)))
            if eps_term >= 2**63:  # an E6 input: its integers and the variance terms need > 128 bits
                if self.strict:
                    raise UnmappableLayerNormError(
                        f"LayerNormalization {ln.name}: input format {in_dt} makes the epsilon term {eps_term} "
                        "(epsilon * D^2 in the input's integer units), beyond the 64-bit epsTerm attribute; "
                        "use an input format with at most 5 exponent bits")
                continue
            scale = Fraction(1, 2 ** self.r_bits)
            a = [Fraction(float(g)) * scale for g in gamma]
            b = [Fraction(float(v)) for v in beta]
            s_out = float(np.float32(s_out))
            zr = z_range(d, self.r_bits)
            thresholds, signs = requant_thresholds(ofmt, s_out, a, b, acc_range=zr)
            t_name = model.make_new_valueinfo_name()
            model.set_initializer(t_name, thresholds)
            sign_attrs = {"channel_signs": [int(s) for s in signs]} if any(s < 0 for s in signs) else {}
            common = dict(domain="finn.custom_op.fpgadataflow", backend="fpgadataflow",
                          name=f"MinifloatLayerNorm_{ln.name}", NumChannels=d, PE=1, inputDataType=in_dt,
                          R=self.r_bits, epsTerm=int(eps_term), numInputVectors=[int(v) for v in shape[:-1]])
            if self.split == "per_channel" and not rows_are_shared(threshold_ints(thresholds)):
                z = model.make_new_valueinfo_name()
                z_dt = f"INT{bits_for_range(*zr)}"
                op = helper.make_node("MinifloatLayerNorm", [deq.input[0]], [z], outputDataType=z_dt,
                                      noActivation=1, **common)
                thr = helper.make_node("MinifloatThreshold", [z, t_name], [quant.output[0]], domain=DOMAIN,
                                       name=f"MinifloatThreshold_{ln.name}", out_format=ofmt_name, channel_axis=-1,
                                       affine=requant_affine(ofmt, s_out, a, b), relu=0, **sign_attrs)
                graph.node.insert(list(graph.node).index(ln), thr)
                graph.node.insert(list(graph.node).index(thr), op)
                model.set_tensor_datatype(z, qonnx_datatype(z_dt))
            else:
                op = helper.make_node("MinifloatLayerNorm", [deq.input[0], t_name], [quant.output[0]],
                                      outputDataType=ofmt_name, **common, **sign_attrs)
                graph.node.insert(list(graph.node).index(ln), op)
            removed = [ln, quant]
            if len(model.find_consumers(deq.output[0]) or []) == 1:
                removed.append(deq)
            for node in removed:
                graph.node.remove(node)
            modified = True
        if modified:
            model = model.transform(InferShapes()).transform(GiveUniqueNodeNames())
        return model, False
