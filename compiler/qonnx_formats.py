"""Number formats in QONNX: the ``MinifloatFormat`` / ``IntFormat`` of a qonnx DataType (``format_from_datatype``)
and of a ``FloatQuant`` / ``Quant`` quantizer node (``quantizer_format``), and the formats recorded in a model's
metadata at export.

``quantizer_format`` refuses quantizers outside minifinn's conventions (non-saturating inf/NaN, no subnormals,
rounding other than round-half-even, a max_val that is not a value of the format, nonzero zero point) with the node's
name; ``quantizer_formats`` checks every quantizer and refuses them all in one message. A saturating ``FloatQuant``
never produces its inf/NaN encodings (qonnx and Brevitas clip to ``max_val`` after rounding), so ``has_inf`` /
``has_nan`` only reserve codes: with ``max_val`` below the ExMy maximum (OCP E4M3: 448, E5M2: 57344) the format has a
reduced maximum (``MinifloatFormat(..., max_value=max_val)``, named ``FLOAT<e,m,b,max>``).
Hardware ops name formats in string attributes (``FLOAT<4,3,7,448>``); ``qonnx_datatype`` is the qonnx DataType of
such a name (its container ``FLOAT<4,3,7>``: qonnx types have no maximum field).
``record_formats`` stores ``{quantizer output tensor: qonnx type name}`` ("FLOAT<3,2,3>", "INT4", "UINT8",
"BIPOLAR") in ``metadata_props["minifinn_formats"]`` (JSON), so the formats survive folding the weight quantizers.
"""

import json
import os

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.basic import get_by_name

from compiler.errors import FormatError, MinifinnError, UnsupportedNodeError
from compiler.numerics import IntFormat, MinifloatFormat

FORMATS_METADATA_KEY = "minifinn_formats"
QUANT_OP_TYPES = ("FloatQuant", "Quant", "BipolarQuant")


def format_from_datatype(dtype, where=""):
    """The format of a qonnx DataType or its name (``FLOAT<e,m,b>``, ``INTn``, ``UINTn``); ``where`` (a node name)
    prefixes the error raised for any other type."""
    name = dtype.name if hasattr(dtype, "bitwidth") else str(dtype)
    prefix = f"{where}: " if where else ""
    try:
        if name.startswith("FLOAT<"):
            return MinifloatFormat.from_qonnx(name)
        if name.startswith(("INT", "UINT")):
            return IntFormat.from_qonnx(name)
    except ValueError as exc:
        raise UnsupportedNodeError(f"{prefix}bad datatype {name}: {exc}") from None
    raise UnsupportedNodeError(f"{prefix}datatype {name} is not a minifloat (FLOAT<e,m,b>) or integer (INTn/UINTn) "
                               "type")


def qonnx_datatype(name):
    """The qonnx DataType of a datatype attribute: ``FLOAT<e,m,b,max>`` (a reduced maximum) -> its container
    ``FLOAT<e,m,b>``, any other name as qonnx resolves it."""
    name = name.decode() if isinstance(name, bytes) else str(name)
    if name.startswith("FLOAT<") and name.count(",") == 3:
        return MinifloatFormat.from_qonnx(name).datatype
    return DataType[name]


def is_const_quant(model, node):
    """True for a quantizer node whose inputs are all constants (a weight quantizer)."""
    return node is not None and node.op_type in QUANT_OP_TYPES and all(
        model.get_initializer(i) is not None for i in node.input if i
    )


def _const_scalar(model, node, idx, what):
    if len(node.input) <= idx or not node.input[idx]:
        raise UnsupportedNodeError(f"{node.op_type} node {node.name} has no {what} input (input {idx})")
    value = model.get_initializer(node.input[idx])
    if value is None or np.asarray(value).size != 1:
        raise UnsupportedNodeError(
            f"{node.op_type} node {node.name}: {what} ({node.input[idx]}) must be a constant scalar, "
            f"found {'a dynamic tensor' if value is None else f'shape {np.asarray(value).shape}'}"
        )
    return float(np.asarray(value).ravel()[0])


def _int_attr(node, name, default):
    attr = get_by_name(node.attribute, name)
    return default if attr is None else int(attr.i)


def quantizer_format(model, node):
    """The number format (``MinifloatFormat`` / ``IntFormat``, or "BIPOLAR") a quantizer node implements.

    Raises ``UnsupportedNodeError`` for quantizers outside minifinn's conventions (inf/NaN encodings, no
    subnormals, non-saturating, rounding other than round-half-even, a clipped max, nonzero zero point).
    """
    if node.op_type == "FloatQuant":
        e = _const_scalar(model, node, 2, "exponent_bitwidth")
        m = _const_scalar(model, node, 3, "mantissa_bitwidth")
        b = _const_scalar(model, node, 4, "exponent_bias")
        mx = _const_scalar(model, node, 5, "max_val")
        if not all(float(v).is_integer() for v in (e, m, b)):
            raise UnsupportedNodeError(f"FloatQuant {node.name}: non-integer exponent/mantissa/bias {e}, {m}, {b}")
        fmt = MinifloatFormat(int(e), int(m), int(b))
        if not _int_attr(node, "saturation", 1):
            special = [a for a in ("has_inf", "has_nan") if _int_attr(node, a, 0)]
            raise UnsupportedNodeError(
                f"FloatQuant {node.name}: saturation=0 ({', '.join(f'{a}=1' for a in special) or 'no inf/NaN'}): "
                "out-of-range values become inf/NaN; minifinn needs saturating quantizers (Brevitas "
                "saturating=True, the default of its minifloat and OCP quantizers)"
            )
        if _int_attr(node, "has_subnormal", 0) != 1:
            raise UnsupportedNodeError(
                f"FloatQuant {node.name}: has_subnormal=0; minifinn supports minifloats with subnormals (Brevitas' "
                "default minifloat and OCP quantizers)"
            )
        rounding = get_by_name(node.attribute, "rounding_mode")
        rounding = "ROUND" if rounding is None else rounding.s.decode().upper()
        if rounding != "ROUND":
            raise UnsupportedNodeError(f"FloatQuant {node.name}: rounding_mode={rounding}; minifinn supports ROUND")
        if mx == fmt.max:
            return fmt
        try:
            return MinifloatFormat(int(e), int(m), int(b), max_value=mx)
        except FormatError as exc:
            raise UnsupportedNodeError(
                f"FloatQuant {node.name}: max_val={mx} but {fmt.qonnx_name} reaches {fmt.max}: {exc}; set "
                "max_available_float to a value of the format (its full maximum, or e.g. 448 for OCP E4M3)"
            ) from None
    if node.op_type == "Quant":
        zero_point = model.get_initializer(node.input[2])
        if zero_point is None or np.any(np.asarray(zero_point) != 0):
            raise UnsupportedNodeError(f"Quant {node.name}: zero point must be a constant 0, found {zero_point}")
        bits = _const_scalar(model, node, 3, "bitwidth")
        if not bits.is_integer():
            raise UnsupportedNodeError(f"Quant {node.name}: bitwidth {bits} is not an integer")
        rounding = get_by_name(node.attribute, "rounding_mode")
        rounding = "ROUND" if rounding is None else rounding.s.decode().upper()
        if rounding != "ROUND":
            raise UnsupportedNodeError(f"Quant {node.name}: rounding_mode={rounding}; minifinn supports ROUND")
        signed, narrow = bool(_int_attr(node, "signed", 1)), bool(_int_attr(node, "narrow", 0))
        return IntFormat(int(bits), signed=signed, narrow=narrow)
    if node.op_type == "BipolarQuant":
        return "BIPOLAR"
    raise UnsupportedNodeError(f"{node.name} is a {node.op_type}, not a quantizer ({', '.join(QUANT_OP_TYPES)})")


def refuse_all(problems, what="quantizer"):
    """Raise one ``UnsupportedNodeError`` listing every problem message (one line per node) when there are any."""
    if len(problems) == 1:
        raise UnsupportedNodeError(problems[0])
    if problems:
        raise UnsupportedNodeError(f"{len(problems)} {what}s are not supported:\n" +
                                   "\n".join(f"  - {p}" for p in problems))


def quantizer_formats(model, check=quantizer_format):
    """``{output tensor: format}`` of every quantizer node, ``check(model, node)`` giving each format; every node it
    refuses is listed in one ``UnsupportedNodeError`` (each line names the node, what is wrong and the fix)."""
    formats, problems = {}, []
    for node in model.graph.node:
        if node.op_type not in QUANT_OP_TYPES:
            continue
        try:
            formats[node.output[0]] = check(model, node)
        except FormatError as exc:  # the format itself refuses (e.g. more than 8 bits)
            problems.append(f"{node.op_type} {node.name}: {exc}")
        except UnsupportedNodeError as exc:
            problems.append(str(exc))
    refuse_all(problems)
    return formats


def quantizer_nodes(model):
    """One dict per quantizer node: name, op_type, input/output tensor, format (qonnx name), narrow, and kind
    ("weight" when every input is a constant, e.g. weights and the ViT's positional embedding, else "act")."""
    rows = []
    formats = quantizer_formats(model)
    for node in model.graph.node:
        if node.op_type not in QUANT_OP_TYPES:
            continue
        fmt = formats[node.output[0]]
        rows.append({
            "node": node.name,
            "op_type": node.op_type,
            "input": node.input[0],
            "output": node.output[0],
            "format": fmt if isinstance(fmt, str) else fmt.qonnx_name,
            "narrow": bool(getattr(fmt, "narrow", False)),
            "kind": "weight" if is_const_quant(model, node) else "act",
        })
    return rows


def record_formats(model):
    """Write ``{quantizer output tensor: qonnx format name}`` into ``metadata_props`` and return it."""
    formats = {row["output"]: row["format"] for row in quantizer_nodes(model)}
    model.set_metadata_prop(FORMATS_METADATA_KEY, json.dumps(formats, sort_keys=True))
    return formats


def recorded_formats(model):
    """The formats dict stored by ``export_qonnx_model`` (``{}`` when the model has none)."""
    if not isinstance(model, ModelWrapper):
        if not os.path.exists(model):
            raise MinifinnError(f"QONNX model file {os.fspath(model)} does not exist")
        model = ModelWrapper(os.fspath(model))
    text = model.get_metadata_prop(FORMATS_METADATA_KEY)
    return {} if text is None else json.loads(text)
