"""Exceptions raised by minifinn for bad input.

Every error raised on user input is a ``MinifinnError`` (a ``ValueError``) whose message names the node, file or
attribute at fault, the value found and what is supported, so that a user can fix the problem without reading a
traceback.
"""


class MinifinnError(ValueError):
    """A user-facing error: the message says what is wrong and how to fix it."""


class UnsupportedNodeError(MinifinnError):
    """A graph node (or one of its attributes) that minifinn cannot handle."""


class FormatError(MinifinnError):
    """An invalid number format specification."""


class DataMissingError(MinifinnError):
    """A data set that is not installed."""


class ConfigError(MinifinnError):
    """An invalid build configuration (unknown board, impossible target, unknown field)."""


class UnmappableSoftmaxError(UnsupportedNodeError):
    """A Softmax float island that cannot become a MinifloatSoftmax hardware op (axis, scales, formats)."""


class UnmappableLayerNormError(UnsupportedNodeError):
    """A LayerNormalization that MinifloatLayerNorm cannot implement (axis, scales, missing gamma/beta, ...)."""


class UnmappableNodesError(MinifinnError):
    """Nodes that keep the lowered graph from becoming one dataflow partition of hardware ops; ``rows``: every such
    node as (name, op type, reason)."""

    def __init__(self, message, rows=()):
        super().__init__(message)
        self.rows = list(rows)
