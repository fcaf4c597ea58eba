"""The contract between the lowering walk and its op handlers.

A handler is a function ``handler(walker, node)`` for one or more ONNX op types, listed in the ``HANDLERS`` table
of its module (``passes.lowering.handlers`` merges the tables; the walker dispatches on ``node.op_type``). It reads
the states of the node's inputs (``walker.get``), emits the exact ops that compute the node (``walker.emit``,
``walker.const``, ``walker.append``) and records the state of every output (``walker.state[name] = ...``).

A handler that cannot lower its node exactly (a float input, a per-channel scale where one scale is needed, a
dynamic parameter, an unsupported attribute) raises ``Refused`` naming the node and the reason, **before it emits
anything**; the walker then runs the node as a float island (QONNX semantics on dequantized inputs). Input that no
lowering can represent (a requantizer whose parameters vary along two axes) raises ``UnsupportedNodeError``.
"""

from onnx import helper

from compiler.errors import MinifinnError


def where(node):
    """The node as error messages name it: ``"<op_type> <name>"``."""
    return f"{node.op_type} {node.name}"


class Refused(MinifinnError):
    """A handler's refusal: the node has no exact lowering for this input and stays a float island."""

    def __init__(self, node, reason):
        super().__init__(f"{where(node)}: {reason}")
        self.node_name = node.name
        self.reason = reason


def node_attrs(node):
    """{attribute name: value} of an ONNX node."""
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}
