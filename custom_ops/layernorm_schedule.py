"""Cycle schedule of the MinifloatLayerNorm RTL core (custom_ops/rtl/minifloat_layernorm.v), row by row.

The core overlaps rows: stage A reads row r+1 into a row buffer slot while one of K reciprocal-square-root units
works on row r and stage C writes row r-1 out. With full-rate streams its timing is a recurrence over the rows
(cycle numbers of the RTL's events; F = D / PE words per row, rows take the units round robin and the NB slots in
order):

* A takes the first word of row r one cycle after the last word of row r-1, once row r-NB's last output word has
  left (``a_first``), and its last word F-1 cycles later, once the head of H has room (``a_last``);
* H is a three-stage pipeline (V', then e and the first remainder) that moves a row on when the next stage is empty
  or moving; its last stage hands the row to unit r mod K once that unit is idle (``load``);
* a unit is busy ``R + 2`` cycles (R+1 division cycles of two quotient bits, then the last square-root bit), then
  holds its result until C takes it (``c_load``, at the earliest when C issues the last word of row r-1), and is
  idle again the cycle after;
* C issues row r's F words in the F cycles after ``c_load``.

So a row costs ``max(F, (R + 4) / K)`` cycles in steady state (``R + 4``: a unit's load, busy and hand-over
cycles). ``rtl_schedule`` evaluates the recurrence; ``row_buffers`` is the smallest slot count that never stalls A
in it; ``useful_units`` the K beyond which more units no longer make a row faster.
"""

import math
from functools import lru_cache

#: stages of H between A's last word and a unit
H_STAGES = 3
#: cycles from reset to the first input word, and from C's last issue to the testbench's count of the last word,
#: measured with the Icarus testbench (tests/test_layernorm.py checks the model against cycles_rtlsim)
START_CYCLES = 1
END_CYCLES = 1


def unit_busy(r_bits):
    """Cycles a reciprocal-square-root unit is busy with one row: R+1 division cycles and the last root bit."""
    return int(r_bits) + 2


def unit_period(r_bits):
    """Cycles from one load of a unit to its next when nothing waits: load, busy, result taken, idle."""
    return unit_busy(r_bits) + 2


def rtl_schedule(rows, folds, units, r_bits, buffers=None):
    """Event cycles of ``rows`` rows: dict of per-row lists ``a_first``, ``a_last``, ``load``, ``c_load`` and
    ``cycles`` (the testbench's count at the last output word). ``buffers=None``: slots never run out."""
    f, k, busy = int(folds), int(units), unit_busy(r_bits)
    a_first, a_last, x1, x2, load, c_load = ([] for _ in range(6))
    for r in range(int(rows)):
        af = START_CYCLES if r == 0 else a_last[r - 1] + 1
        if buffers is not None and r >= buffers:
            af = max(af, c_load[r - buffers] + f + 1)
        al = af + f - 1
        if r:
            al = max(al, x1[r - 1])
        leave1 = max(al + 1, x2[r - 1]) if r else al + 1
        leave2 = max(leave1 + 1, load[r - 1]) if r else leave1 + 1
        ld = leave2 + 1
        if r >= k:
            ld = max(ld, c_load[r - k] + 1)
        cl = ld + busy + 1
        if r:
            cl = max(cl, c_load[r - 1] + f)
        for lst, val in ((a_first, af), (a_last, al), (x1, leave1), (x2, leave2), (load, ld), (c_load, cl)):
            lst.append(val)
    cycles = (c_load[-1] + f + END_CYCLES) if rows else 0
    return {"a_first": a_first, "a_last": a_last, "load": load, "c_load": c_load, "cycles": cycles}


@lru_cache(maxsize=None)
def row_buffers(folds, units, r_bits):
    """Smallest number of row buffer slots that keeps the schedule as fast as unlimited slots would (over enough
    rows to reach its steady state): the rows in flight when A is the bottleneck; when the units are, A may run
    ahead only as far as they use it."""
    f = int(folds)
    probe = 3 * int(units) + 2 * math.ceil((2 * f + unit_period(r_bits) + H_STAGES) / f) + 16
    best = rtl_schedule(probe, f, units, r_bits)["cycles"]
    slots = 1
    while rtl_schedule(probe, f, units, r_bits, slots)["cycles"] > best:
        slots += 1
    return slots


def useful_units(folds, r_bits):
    """The K from which the units no longer bound a row: ``ceil((R + 4) / F)`` (at least 1)."""
    return max(1, math.ceil(unit_period(r_bits) / int(folds)))
