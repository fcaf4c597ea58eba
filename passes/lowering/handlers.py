"""The dispatch table of the lowering walk: {ONNX op type: handler(walker, node)} from every handler module.

An op type without an entry runs as a float island. Adding an op means writing its handler and listing it in its
module's ``HANDLERS`` (a new module is listed here once); ``passes/lowering/handler.py`` states the contract.
"""

from passes.lowering import linear, matrix, movement, pooling, quantize

_MODULES = (quantize, linear, matrix, pooling, movement)


def _merged(modules):
    table = {}
    for module in modules:
        clash = sorted(set(table) & set(module.HANDLERS))
        if clash:
            raise RuntimeError(f"{module.__name__} registers handlers for {clash} a second time")
        table.update(module.HANDLERS)
    return table


HANDLERS = _merged(_MODULES)
