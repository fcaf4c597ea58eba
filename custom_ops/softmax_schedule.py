"""Cycle schedule of the MinifloatSoftmax RTL core (custom_ops/rtl/minifloat_softmax.v), row by row.

The core overlaps rows in three stages: A reads row r+1 into a row buffer slot (and, when the alignment is not
exact, sums its e_i in a second pass over the slot) while T computes row r's thresholds with ``thresholdUnits`` = KU
multipliers in KT = ceil(K / KU) cycles and C writes row r-1 out. With full-rate streams its timing is a
recurrence over the rows (cycle numbers of the RTL's events; F = N / PE words per row, ``passes`` = 1 when A sums
while reading, 2 when it needs the second pass):

* A takes the first word of row r in the cycle T takes row r-1 (``take``), and completes row r ``passes * F - 1``
  cycles later (``a_end``);
* T takes row r once A has completed it (at the earliest the cycle after ``a_end``) and C has taken row r-1
  (``c_take``, T is free again in that cycle), and is busy KT cycles;
* C takes row r the cycle after T's last busy cycle, at the earliest in the cycle it issues row r-1's last word,
  and issues row r's F words in the F cycles after.

So a row costs ``max(passes * F, KT + 1)`` cycles in steady state. ``rtl_schedule`` evaluates the recurrence;
``useful_units`` is the KU beyond which more multipliers no longer make a row faster.
"""

import math

#: cycles from reset to the first input word and from C's last issue to the testbench's count of the last word,
#: measured with the Icarus testbench (tests/test_softmax.py checks the model against cycles_rtlsim)
START_CYCLES = 1
END_CYCLES = 1


def threshold_cycles(k, units):
    """KT: cycles T needs for one row's K thresholds with ``units`` multipliers (at least one)."""
    return max(1, math.ceil(int(k) / int(units)))


def rtl_schedule(rows, folds, passes, k, units):
    """Event cycles of ``rows`` rows: dict of per-row lists ``take`` (T takes the row), ``c_take`` (C takes it) and
    ``cycles`` (the testbench's count at the last output word)."""
    f, kt = int(folds), threshold_cycles(k, units)
    take, c_take = [], []
    a_first = START_CYCLES
    for r in range(int(rows)):
        a_end = a_first + int(passes) * f - 1
        t = a_end + 1 if r == 0 else max(a_end + 1, c_take[r - 1])
        ct = t + kt + 1 if r == 0 else max(t + kt + 1, c_take[r - 1] + f)
        take.append(t)
        c_take.append(ct)
        a_first = t
    cycles = (c_take[-1] + f + END_CYCLES) if rows else 0
    return {"take": take, "c_take": c_take, "cycles": cycles}


def row_cycles(folds, passes, k, units):
    """Steady-state cycles per row: A's passes or T's thresholds and hand-over, whichever is longer."""
    return max(int(passes) * int(folds), threshold_cycles(k, units) + 1)


def useful_units(folds, passes, k):
    """The smallest KU with which T no longer bounds a row (at least 1)."""
    k = int(k)
    for units in range(1, max(k, 1) + 1):
        if threshold_cycles(k, units) + 1 <= int(passes) * int(folds):
            return units
    return max(k, 1)
