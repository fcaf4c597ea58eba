"""Design-space exploration: hardware-exact accuracy against hardware cost over weight x activation formats.

* ``formats``: the format grid (INT3-8 and every ExMy of 3-8 bits);
* ``floats``: the float models the points quantize (trained once per model and data set);
* ``points``: one point (PTQ, export, lowering, hardware-exact accuracy, cost), its cache key and the JSON point
  cache, ``run_points`` in local processes;
* ``cost``: the compiler's estimates of the whole hardware graph folded to one throughput target;
* ``stats``: the training seeds' mean and standard deviation per point, and the noise rule of every comparison;
* ``pareto``: Pareto flags, minifloat vs integer at equal width and the paper-side-by-side table;
* ``mixed``: the per-layer (mixed-precision) weight-format search under a LUT budget.
"""

from compiler.dse.cost import (
    COST_BUDGET_SCALE,
    COST_PART,
    COST_VARIANTS,
    breakdown,
    hardware_cost,
    hardware_costs,
    hardware_graph,
    lut_only,
)
from compiler.dse.floats import FLOAT_INIT_SEED, float_key
from compiler.dse.formats import (
    ALL_FORMATS,
    INT_FORMATS,
    MINIFLOAT_FORMATS,
    QUICK_FORMATS,
    STUDY_FORMATS,
    format_bits,
)
from compiler.dse.mixed import layer_alternatives, mixed_precision_search, weight_sites
from compiler.dse.pareto import (
    PAPER_MAC_EXTRA,
    PAPER_MAC_EXTRA_WITH_CONVERSION,
    paper_table,
    pareto_flags,
    side_by_side,
)
from compiler.dse.points import (
    CALIB_IMAGES,
    HW_CHECK_IMAGES,
    STUDY_VERSION,
    UNLOWERED_COMPUTE,
    check_fully_lowered,
    dse_technique_sets,
    evaluate_point,
    point_key,
    run_points,
    study_key,
)
from compiler.dse.stats import aggregate, compare, point_group

__all__ = [
    "ALL_FORMATS",
    "CALIB_IMAGES",
    "COST_BUDGET_SCALE",
    "COST_PART",
    "COST_VARIANTS",
    "FLOAT_INIT_SEED",
    "HW_CHECK_IMAGES",
    "INT_FORMATS",
    "MINIFLOAT_FORMATS",
    "PAPER_MAC_EXTRA",
    "PAPER_MAC_EXTRA_WITH_CONVERSION",
    "QUICK_FORMATS",
    "STUDY_FORMATS",
    "STUDY_VERSION",
    "UNLOWERED_COMPUTE",
    "aggregate",
    "breakdown",
    "check_fully_lowered",
    "compare",
    "dse_technique_sets",
    "evaluate_point",
    "float_key",
    "format_bits",
    "hardware_cost",
    "hardware_costs",
    "hardware_graph",
    "layer_alternatives",
    "lut_only",
    "mixed_precision_search",
    "paper_table",
    "pareto_flags",
    "point_group",
    "point_key",
    "run_points",
    "side_by_side",
    "study_key",
    "weight_sites",
]
