"""LegalizeFloatQuant: check every quantizer and split it into *format values* and a *scale*.

After this pass the graph holds no ``FloatQuant`` / ``Quant`` node:

* a **weight** quantizer (all inputs constant: weights, the ViT's positional embedding) becomes an initializer
  ``<out>_values`` holding the unscaled format values (``v = q(fp32(w / scale))``), annotated with the format's
  qonnx DataType (``FLOAT<e,m,b>`` / ``INTn`` / ``UINTn``), followed by ``Mul(<out>_values, scale) -> <out>``;
* an **activation** quantizer becomes ``QuantizeToFormat(x, scale) -> <out>_values`` (annotated likewise) followed by
  ``Mul(<out>_values, scale) -> <out>``.

``QuantizeToFormat`` and the ``Mul`` perform exactly qonnx' fp32 operations, so the legalized graph computes the
same outputs as the QONNX graph bit for bit; it only makes formats and scales explicit for the streamlining pass.
It must run before qonnx' constant folding, which would erase the weight formats (compiler/export.py records them,
compiler/qonnx_formats.py reads them).

Supported quantizers (anything else is rejected naming the node, the attribute, the value found and what is
supported; every offending quantizer in one message): ``FloatQuant`` with constant scale (> 0), exponent / mantissa /
bias / max_val constant scalars, ``saturation=1`` (``has_inf`` / ``has_nan`` then only reserve codes that are never
produced), ``has_subnormal=1``, ``rounding_mode=ROUND``, ``max_val`` a value of the format (its largest value, or a
reduced maximum such as OCP E4M3's 448: ``compiler.numerics``); ``Quant`` with constant scale, zero point 0, rounding
ROUND; at most 8 bits.
"""

import numpy as np
import onnx.helper as helper
from qonnx.transformation.base import Transformation

from compiler.errors import FormatError, UnsupportedNodeError
from compiler.numerics import MinifloatFormat
from compiler.qonnx_formats import quantizer_format, quantizer_formats
from custom_ops.general import DOMAIN

MAX_BITS = 8


def _scale_of(model, node, fmt):
    name = node.input[1] if len(node.input) > 1 else ""
    scale = model.get_initializer(name) if name else None
    if scale is None:
        raise UnsupportedNodeError(
            f"{node.op_type} {node.name}: scale input {name or '(missing)'} is not a constant; minifinn needs "
            "constant (calibrated) scales. Export after calibration, with the quantizer in eval mode."
        )
    scale = np.asarray(scale, dtype=np.float32)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise UnsupportedNodeError(
            f"{node.op_type} {node.name}: scale {name} has non-positive or non-finite entries "
            f"(min {scale.min()!r}); scales must be > 0"
        )
    return scale


def check_quantizer(model, node):
    """The quantizer's format, after checking every supported-feature rule (module docstring)."""
    if node.op_type == "BipolarQuant":
        raise UnsupportedNodeError(
            f"BipolarQuant {node.name}: bipolar (1-bit) quantizers are not supported; minifinn handles minifloats "
            "(FloatQuant) and 2..8-bit integers (Quant)"
        )
    try:
        fmt = quantizer_format(model, node)
    except FormatError as exc:  # e.g. more than 8 bits: the format itself refuses
        raise UnsupportedNodeError(f"{node.op_type} {node.name}: {exc}") from None
    bits = fmt.bits
    if bits > MAX_BITS:
        what = (f"1 + exponent {fmt.exponent_bits} + mantissa {fmt.mantissa_bits} = {bits} bits"
                if isinstance(fmt, MinifloatFormat) else f"bitwidth={bits}")
        raise UnsupportedNodeError(
            f"{node.op_type} {node.name}: {what}; minifinn supports formats of at most {MAX_BITS} bits"
        )
    _scale_of(model, node, fmt)
    return fmt


class LegalizeFloatQuant(Transformation):
    """Replace every FloatQuant / Quant by format values + scale (module docstring)."""

    def apply(self, model):
        modified = False
        graph = model.graph
        formats = quantizer_formats(model, check_quantizer)
        for node in list(graph.node):
            if node.op_type not in ("FloatQuant", "Quant", "BipolarQuant"):
                continue
            fmt = formats[node.output[0]]
            scale = _scale_of(model, node, fmt)
            out = node.output[0]
            values = f"{out}_values"
            scale_name = f"{out}_scale"
            model.set_initializer(scale_name, scale)
            pos = list(graph.node).index(node)
            new_nodes = []
            x = model.get_initializer(node.input[0])
            if x is not None and all(model.get_initializer(i) is not None for i in node.input if i):
                v = fmt.quantize(np.asarray(x, dtype=np.float32) / scale)
                model.set_initializer(values, v.astype(np.float32))
            else:
                new_nodes.append(helper.make_node("QuantizeToFormat", [node.input[0], scale_name], [values],
                                                  domain=DOMAIN, name=f"{node.name}_quantize",
                                                  format=fmt.qonnx_name))
            new_nodes.append(helper.make_node("Mul", [values, scale_name], [out], name=f"{node.name}_scale"))
            graph.node.remove(node)
            for offset, new in enumerate(new_nodes):
                graph.node.insert(pos + offset, new)
            model.set_tensor_datatype(values, fmt.datatype)
            shape = model.get_tensor_shape(out)
            if shape is not None and model.get_initializer(values) is None:
                model.set_tensor_shape(values, shape)  # the graph stays shape-complete
            modified = True
        return model, modified
