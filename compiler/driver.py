"""Driver generation: a PYNQ/Alveo ``driver.py`` (template compiler/templates/driver.py.tpl) plus the numpy-only
packing module ``minifinn_io.py``, written to ``output_dir/deploy/driver/``.

``io_shapes(model)`` follows FINN's ``get_driver_shapes`` keys (``ishape_normal``, ``ishape_folded``,
``ishape_packed`` and the ``o*`` counterparts, data types, DMA names) and adds the formats' code tables
(``icode_values``: value of every code, so the driver encodes/decodes minifloats without minifinn). The DMA names
are those FINN's ZynqBuild / VitisBuild give the IODMAs they insert (``idma0``, ``odma0``).
"""

import json
import shutil
from pathlib import Path

import numpy as np
from qonnx.custom_op.registry import getCustomOp

from compiler.errors import MinifinnError

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _code_table(dtype_name):
    """Values of all codes (index = code) of a FLOAT<e,m,b> / INTn / UINTn stream; [] for wide accumulators."""
    from custom_ops.general.common import format_of

    fmt = format_of(dtype_name, "driver")
    if fmt.bits > 8:
        return []
    codes = np.arange(2 ** fmt.bits)
    if dtype_name.startswith("FLOAT<"):
        return [float(v) for v in fmt.decode(codes)]
    return [float(v) for v in fmt.decode(codes)]


def io_shapes(model, platform):
    """FINN-style I/O description of a dataflow model (one input, one output stream)."""
    first = model.find_consumer(model.graph.input[0].name)
    last = model.find_producer(model.graph.output[0].name)
    if first is None or last is None:
        raise MinifinnError("the dataflow model has no node at its input or output")
    fi, la = getCustomOp(first), getCustomOp(last)
    idt, odt = fi.get_input_datatype(0), la.get_output_datatype(0)
    ifold, ofold = tuple(fi.get_folded_input_shape(0)), tuple(la.get_folded_output_shape(0))
    ibits, obits = idt.bitwidth(), odt.bitwidth()
    return {
        "platform": platform,
        "idt": [f"DataType['{idt.name}']"], "odt": [f"DataType['{odt.name}']"],
        "ibits": ibits, "obits": obits,
        "ishape_normal": list(fi.get_normal_input_shape(0)), "oshape_normal": list(la.get_normal_output_shape(0)),
        "ishape_folded": list(ifold), "oshape_folded": list(ofold),
        "ishape_packed": list(ifold[:-1]) + [(ifold[-1] * ibits + 7) // 8],
        "oshape_packed": list(ofold[:-1]) + [(ofold[-1] * obits + 7) // 8],
        "icode_values": _code_table(idt.name) if idt.name.startswith(("FLOAT<", "INT", "UINT")) else [],
        "ocode_values": [] if odt.name.startswith("INT") and obits > 8 else _code_table(odt.name),
        "osigned_int": odt.name.startswith("INT") and obits > 8,
        "input_dma_name": "idma0", "output_dma_name": "odma0",
    }


def make_driver(model, out_dir, platform, model_name="model"):
    """Write driver.py, minifinn_io.py and io_shapes.json into ``out_dir``; returns the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shapes = io_shapes(model, platform)
    text = (TEMPLATES / "driver.py.tpl").read_text()
    text = text.replace("$MODEL$", model_name).replace("$IO_SHAPES$", json.dumps(shapes, indent=1))
    (out / "driver.py").write_text(text)
    shutil.copy(TEMPLATES / "minifinn_io.py", out / "minifinn_io.py")
    (out / "io_shapes.json").write_text(json.dumps(shapes, indent=1) + "\n")
    return out
