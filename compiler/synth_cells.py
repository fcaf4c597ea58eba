"""Counting Yosys' mapped cells: ``stat -json`` parsing and the FPGA primitive classes of ``compiler.synth``.

Counting (7-series / UltraScale primitive names): ``lut`` logic LUTs (LUT1..LUT6, LUT6_2); ``lutram`` LUTs spent on
distributed RAM (RAM64M = 4, RAM32X1D = 2, ...); ``srl`` shift-register LUTs; ``ff`` flip-flops; ``latch``;
``carry`` CARRY4/CARRY8; ``muxf7``/``muxf8``; ``dsp`` DSP48 slices; ``bram36`` RAMB36 + 0.5 * RAMB18; ``uram``.
Unmapped generic cells (``$_AND_`` ...) mean the flow did not finish mapping: that is an error, not a count.
"""

from __future__ import annotations

import json
import re
from typing import Mapping

from compiler.errors import MinifinnError

_LUT_CELLS = {"LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "LUT6_2"}
# LUTs consumed per distributed-RAM primitive (7-series / UltraScale CLB).
_LUTRAM_LUTS = {
    "RAM16X1S": 1, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
    "RAM16X1D": 2, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8,
    "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM16X2S": 2, "RAM32X2S": 2,
    "RAM16X1S_1": 1, "RAM32X1S_1": 1, "RAM64X1S_1": 1, "RAM128X1S_1": 2,
}
_SRL_CELLS = {"SRL16E", "SRLC16E", "SRLC32E", "SRL16", "SRLC16"}
_FF_RE = re.compile(r"^FD[A-Z]*(_1)?$")
_LATCH_RE = re.compile(r"^LD[A-Z]*(_1)?$")
_CARRY_CELLS = {"CARRY4", "CARRY8"}
_DSP_CELLS = {"DSP48E1", "DSP48E2", "DSP48A1", "DSP48E", "DSP48A", "DSP48"}
_BRAM36_CELLS = {"RAMB36E1", "RAMB36E2", "FIFO36E1", "FIFO36E2", "RAMB36"}
_BRAM18_CELLS = {"RAMB18E1", "RAMB18E2", "FIFO18E1", "FIFO18E2", "RAMB18", "RAMB16BWER"}
_URAM_CELLS = {"URAM288", "URAM288_BASE"}




class SynthesisError(MinifinnError):
    """Yosys failed, timed out or left the design unmapped."""



def count_cells(cells: Mapping[str, int]) -> dict:
    """Turn a ``{cell type: count}`` map (Yosys ``num_cells_by_type``) into the resource counts of ``SynthResult``.

    Raises ``SynthesisError`` if generic (``$``-prefixed) cells are left, i.e. the design was not fully mapped.
    """
    unmapped = {k: v for k, v in cells.items() if k.startswith("$")}
    if unmapped:
        raise SynthesisError(f"Yosys left unmapped generic cells {unmapped}: the technology mapping did not finish")
    out = dict(lut=0, lutram=0, srl=0, ff=0, latch=0, carry=0, muxf7=0, muxf8=0, dsp=0, bram36=0.0, uram=0)
    lut_by_size: dict[str, int] = {}
    for name, n in cells.items():
        n = int(n)
        if name in _LUT_CELLS:
            out["lut"] += n
            lut_by_size[name] = lut_by_size.get(name, 0) + n
        elif name in _LUTRAM_LUTS:
            out["lutram"] += _LUTRAM_LUTS[name] * n
        elif name in _SRL_CELLS:
            out["srl"] += n
        elif _FF_RE.match(name):
            out["ff"] += n
        elif _LATCH_RE.match(name):
            out["latch"] += n
        elif name in _CARRY_CELLS:
            out["carry"] += n
        elif name == "MUXF7":
            out["muxf7"] += n
        elif name in ("MUXF8", "MUXF9"):
            out["muxf8"] += n
        elif name in _DSP_CELLS:
            out["dsp"] += n
        elif name in _BRAM36_CELLS:
            out["bram36"] += n
        elif name in _BRAM18_CELLS:
            out["bram36"] += 0.5 * n
        elif name in _URAM_CELLS:
            out["uram"] += n
        # anything else (buffers, unknown primitives) stays visible in ``cells`` only
    out["lut_by_size"] = dict(sorted(lut_by_size.items()))
    return out


def parse_stat_json(text: str, top: str | None = None) -> dict:
    """Cell counts ``{type: n}`` of the whole design from the text of ``stat -json``.

    Uses the ``design`` section (whole hierarchy) when present, else the module named ``top``, else the only module.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SynthesisError(f"could not parse Yosys `stat -json` output: {err}; text starts {text[:200]!r}") from err
    section = data.get("design")
    modules = data.get("modules") or {}
    if section is None:
        if top is not None and ("\\" + top in modules or top in modules):
            section = modules.get("\\" + top) or modules[top]
        elif len(modules) == 1:
            section = next(iter(modules.values()))
        else:
            raise SynthesisError(
                f"`stat -json` has no 'design' section and {len(modules)} modules "
                f"({', '.join(list(modules)[:5])}); cannot tell which is the top {top!r}"
            )
    cells = section.get("num_cells_by_type")
    if cells is None:
        raise SynthesisError(f"`stat -json` section lacks 'num_cells_by_type': keys {sorted(section)}")
    return {str(k): int(v) for k, v in cells.items()}
