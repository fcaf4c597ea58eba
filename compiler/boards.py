"""Target boards: FPGA part and resource budget.

Parts come from finn-plus' ``pynq_part_map`` / ``alveo_part_map``; resource budgets from finn-plus'
``finn.util.platforms`` models (summed over SLRs) where it has one, and from the devices' data sheets otherwise
(KV260 = xck26, same fabric family as ZU5EV-class parts). Counts are LUT, FF, BRAM_18K, URAM, DSP, FINN's units.
"""

from dataclasses import dataclass

from compiler.errors import ConfigError
from finn.util.basic import alveo_part_map, pynq_part_map
from finn.util.platforms import platforms

# Data-sheet budgets for boards finn-plus lists a part for but has no platform model of.
_DATASHEET = {
    "KV260_SOM": {"LUT": 117120, "FF": 234240, "BRAM_18K": 288, "URAM": 64, "DSP": 1248},
    "Ultra96-V2": {"LUT": 70560, "FF": 141120, "BRAM_18K": 432, "URAM": 0, "DSP": 360},
    "RFSoC4x2": {"LUT": 425280, "FF": 850560, "BRAM_18K": 2160, "URAM": 80, "DSP": 4272},
}


class UnknownBoardError(ConfigError):
    pass


@dataclass(frozen=True)
class Board:
    name: str
    part: str
    shell_flow: str  # "vivado_zynq" or "vitis_alveo"
    resources: dict  # LUT, FF, BRAM_18K, URAM, DSP

    def share(self, used: dict) -> dict:
        """Fraction of each budgeted resource that ``used`` takes (keys missing in ``used`` count as 0)."""
        return {k: (used.get(k, 0) / v if v else 0.0) for k, v in self.resources.items()}


def _finn_tables():
    return pynq_part_map, alveo_part_map, platforms


def board_names():
    pynq, alveo, _ = _finn_tables()
    return sorted(list(pynq) + list(alveo))


def get_board(name):
    """Look a board up by name (case-insensitive); a clear error lists the known boards."""
    pynq, alveo, platforms = _finn_tables()
    table = {**{k: (v, "vivado_zynq") for k, v in pynq.items()}, **{k: (v, "vitis_alveo") for k, v in alveo.items()}}
    match = {k.lower(): k for k in table}.get(str(name).lower())
    if match is None:
        raise UnknownBoardError(f"unknown board {name!r}; known boards: {', '.join(board_names())}")
    part, flow = table[match]
    if match in platforms:
        per_slr = platforms[match]().resource_count_dict
        keys = ("LUT", "FF", "BRAM_18K", "URAM", "DSP")
        resources = {k: int(sum(slr[k] for slr in per_slr.values())) for k in keys}
    elif match in _DATASHEET:
        resources = dict(_DATASHEET[match])
    else:
        raise UnknownBoardError(
            f"board {match!r} (part {part}) has no resource model in finn-plus or minifinn; "
            f"use one of: {', '.join(sorted(set(platforms) | set(_DATASHEET)))}"
        )
    return Board(match, part, flow, resources)
