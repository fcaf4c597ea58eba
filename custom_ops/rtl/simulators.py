"""The rtlsim back ends by name, and the choice between them.

``RTL_SIMULATORS``: "verilator" (custom_ops/rtl/verilator.py, compiled and cached, the default) and "icarus"
(custom_ops/rtl/icarus.py). ``resolve_rtlsim_backend(name)`` is the back end a simulation uses: ``name``, except
"verilator" without ``verilator``/``g++`` on PATH, which falls back to "icarus" with a logged message (once per
process). The choice itself travels with the work: a node's ``rtlsim_backend`` attribute, the stitched simulation's
``simulator`` argument (set from the build config's ``rtlsim_backend``).
"""

import logging

from compiler.errors import MinifinnError
from custom_ops.rtl import verilator_build
from custom_ops.rtl.icarus import IcarusSimulator
from custom_ops.rtl.verilator import VerilatorSimulator

log = logging.getLogger("minifinn.rtlsim")

#: rtlsim back ends by name (the build config's ``rtlsim_backend`` values)
RTL_SIMULATORS = {VerilatorSimulator.name: VerilatorSimulator(), IcarusSimulator.name: IcarusSimulator()}
DEFAULT_RTLSIM_BACKEND = VerilatorSimulator.name
_fallbacks_logged = set()


#: how many times the estimated cycles a simulation may take before its watchdog calls it deadlocked (random stalls)
WATCHDOG_STALL_FACTOR = 4


def watchdog_allowance(base, first_frame_cycles, frame_interval, n_frames):
    """Cycles a simulation's watchdog allows beyond its per-stream-word budget: ``base`` plus
    ``WATCHDOG_STALL_FACTOR`` times the cycles the estimates expect for ``n_frames`` frames (the first frame in
    ``first_frame_cycles``, then one ``frame_interval`` per further frame), so a slowly folded design is not called
    deadlocked while it still works. One rule for a node's rtlsim and the stitched simulation."""
    return int(base + WATCHDOG_STALL_FACTOR * (first_frame_cycles + max(n_frames - 1, 0) * frame_interval))


def resolve_rtlsim_backend(name):
    """The back end that simulates for the choice ``name`` ("verilator" | "icarus")."""
    if name not in RTL_SIMULATORS:
        raise MinifinnError(f"rtlsim back end {name!r} is not one of {sorted(RTL_SIMULATORS)}")
    if name == VerilatorSimulator.name and not verilator_build.available():
        if name not in _fallbacks_logged:
            _fallbacks_logged.add(name)
            log.warning("rtlsim: verilator (or g++) is not on PATH; simulating with Icarus Verilog instead")
        return IcarusSimulator.name
    return name
