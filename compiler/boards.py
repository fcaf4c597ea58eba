"""Target boards: FPGA part and resource budget.

Parts come from finn-plus' ``pynq_part_map`` / ``alveo_part_map``; resource budgets from finn-plus'
``finn.util.platforms`` models (summed over SLRs) where it has one, and from the devices' data sheets otherwise
(KV260 = xck26, same fabric family as ZU5EV-class parts). Counts are LUT, FF, BRAM_18K, URAM, DSP, FINN's units.

External memory: the peak bandwidth (GB/s, 1e9 bytes) of the memory the weights of ``mem_mode = "external"`` nodes
stream from (FINN's IODMA in "wrap" mode on Zynq's HP ports / Alveo's memory banks). finn-plus' platform models
have the DDR/HBM channel placement but no bandwidths, so the figures are the data-sheet peaks below (interface
width x transfer rate); sustained DMA throughput is lower (typically 70-90 %).
"""

from dataclasses import dataclass
from typing import Optional

from compiler.errors import ConfigError
from finn.util.basic import alveo_part_map, pynq_part_map
from finn.util.platforms import platforms

# Data-sheet budgets for boards finn-plus lists a part for but has no platform model of.
_DATASHEET = {
    "KV260_SOM": {"LUT": 117120, "FF": 234240, "BRAM_18K": 288, "URAM": 64, "DSP": 1248},
    "Ultra96-V2": {"LUT": 70560, "FF": 141120, "BRAM_18K": 432, "URAM": 0, "DSP": 360},
    "RFSoC4x2": {"LUT": 425280, "FF": 850560, "BRAM_18K": 2160, "URAM": 80, "DSP": 4272},
}

# (peak GB/s, what it is) with the source of the figure; boards without an entry (no data-sheet figure checked here)
# have no external-weights bandwidth (None): no weights go off chip there (passes/external_weights.py).
_MEMORY = {
    # Digilent PYNQ-Z1 reference manual (the PYNQ-Z2 has the same memory): 512 MB DDR3, 16-bit bus at 1050 MT/s
    "Pynq-Z1": (2.1, "DDR3-1050 x16"),
    "Pynq-Z2": (2.1, "DDR3-1050 x16"),
    # AMD DS987 (Kria K26 SOM): 4 GB, 64-bit wide, 2400 Mb/s
    "KV260_SOM": (19.2, "DDR4-2400 x64"),
    # AMD DS962 (U200/U250): 4 x 16 GB DDR4-2400, 64 data bits each: 4 x 19.2 GB/s = 76.8 GB/s
    "U200": (76.8, "4x DDR4-2400 x64"),
    "U250": (76.8, "4x DDR4-2400 x64"),
    # AMD DS963 (U280): 8 GB HBM2 at 460 GB/s (plus 2x DDR4); DS965 (U50): 8 GB HBM2 at 316 GB/s; DS978 (U55C):
    # 16 GB HBM2 at 460 GB/s
    "U280": (460.0, "HBM2 8 GB"),
    "U50": (316.0, "HBM2 8 GB"),
    "U55C": (460.0, "HBM2 16 GB"),
}


class UnknownBoardError(ConfigError):
    pass


@dataclass(frozen=True)
class Board:
    name: str
    part: str
    shell_flow: str  # "vivado_zynq" or "vitis_alveo"
    resources: dict  # LUT, FF, BRAM_18K, URAM, DSP
    memory_GBps: Optional[float] = None  # peak external memory bandwidth (module docstring); None: no figure
    memory: str = ""  # what that memory is, e.g. "4x DDR4-2400 x64"

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
    bandwidth, memory = _MEMORY.get(match, (None, ""))
    return Board(match, part, flow, resources, bandwidth, memory)
