"""Handlers of data movement: layout ops (``Reshape``, ``Flatten``, ``Transpose``, ``Squeeze``, ``Unsqueeze``,
``Identity``), value-preserving selections (``MaxPool``, ``Gather``, ``Slice``, ``Pad`` with zeros) and ``Concat``.

On per-tensor scaled activation values each runs unchanged on the values (the scale commutes with it: max pooling
of positively scaled values, padding with the value 0). On an accumulator a layout op stays pending
(``Aff.layout``, per-channel parameters moved with the data) and is applied to the requantized values, so the
requantizer compares the accumulator in the layout it was computed in; selections on accumulators are refused.
``Concat`` joins values tensors (activations and quantized constants, such as torchvision's class token after
``passes.hoist_quantizers``) of one format and one per-tensor scale: it runs unchanged on the values.
"""

import copy

import numpy as np
from qonnx.util.basic import get_by_name

from passes.lowering.handler import Refused
from passes.lowering.state import Aff, Vals, is_scalar, moved

LAYOUT_OPS = ("Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity")
SELECTION_OPS = ("MaxPool", "Gather", "Slice")


def _on_values(walker, node, st):
    """Copy ``node`` onto per-tensor scaled activation values."""
    if not (isinstance(st, Vals) and is_scalar(st.scale) and not st.const):
        raise Refused(node, f"input {node.input[0]} is not per-tensor scaled activation values")
    new = copy.deepcopy(node)
    new.input[0] = st.name
    new.output[0] = walker.name(node.output[0])
    new.name = walker.name(node.name)
    walker.append(new)
    walker.annotate(new.output[0], walker.shape(node.output[0]), st.fmt.datatype)
    walker.state[node.output[0]] = Vals(new.output[0], st.fmt, st.scale)


def layout(walker, node):
    st = walker.get(node.input[0])
    if isinstance(st, Aff):
        if any(walker.init(t) is None for t in node.input[1:] if t):
            raise Refused(node, "a shape / axes input is not a constant")
        entry = (copy.deepcopy(node), walker.shape(node.input[0]), walker.shape(node.output[0]))
        walker.state[node.output[0]] = moved(st, entry)
        return
    _on_values(walker, node, st)


def selection(walker, node):
    st = walker.get(node.input[0])
    if isinstance(st, Aff):
        raise Refused(node, f"input {node.input[0]} is an accumulator; {node.op_type} needs requantized values")
    _on_values(walker, node, st)


def _zero_pad(walker, node):
    mode = get_by_name(node.attribute, "mode")
    if mode is not None and mode.s.decode() != "constant":
        return False
    if len(node.input) > 2 and node.input[2]:
        value = walker.init(node.input[2])
        return value is not None and np.all(np.asarray(value) == 0)
    return True


def pad(walker, node):
    st = walker.get(node.input[0])
    if isinstance(st, Aff):
        raise Refused(node, f"input {node.input[0]} is an accumulator; Pad needs requantized values")
    if isinstance(st, Vals) and is_scalar(st.scale) and not st.const and not _zero_pad(walker, node):
        raise Refused(node, "pads with a nonzero constant or a non-constant mode; only zero padding commutes "
                            "with the scale")
    _on_values(walker, node, st)


def concat(walker, node):
    states = [walker.get(t) for t in node.input]
    if not all(isinstance(st, Vals) and is_scalar(st.scale) for st in states):
        raise Refused(node, "needs quantized inputs with per-tensor scales (activations or quantized constants)")
    if all(st.const for st in states):
        raise Refused(node, "all inputs are constants")
    first = states[0]
    if any(st.fmt != first.fmt or st.scale.ravel()[0] != first.scale.ravel()[0] for st in states[1:]):
        raise Refused(node, "its inputs differ in format or scale; one quantizer must produce all of them")
    new = copy.deepcopy(node)
    for i, st in enumerate(states):
        new.input[i] = st.name
    new.output[0] = walker.name(node.output[0])
    new.name = walker.name(node.name)
    walker.append(new)
    walker.annotate(new.output[0], walker.shape(node.output[0]), first.fmt.datatype)
    walker.state[node.output[0]] = Vals(new.output[0], first.fmt, first.scale)


HANDLERS = {**{op: layout for op in LAYOUT_OPS}, **{op: selection for op in SELECTION_OPS}, "Pad": pad,
            "Concat": concat}
