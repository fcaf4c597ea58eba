"""Comparisons over measured points: Pareto flags (accuracy against a cost) and minifloat vs integer at equal
width."""


def pareto_flags(rows, cost_key):
    """True for rows that no other row of the same model beats (>= accuracy and <= cost, one strictly)."""
    flags = []
    for r in rows:
        dominated = any(o is not r and o["model"] == r["model"] and o["accuracy"] >= r["accuracy"]
                        and o[cost_key] <= r[cost_key] and (o["accuracy"] > r["accuracy"] or o[cost_key] < r[cost_key])
                        for o in rows)
        flags.append(not dominated)
    return flags


def side_by_side(rows):
    """{model: [{bits, best_int, best_minifloat}]} for W = A points of equal width."""
    table = {}
    for model in sorted({r["model"] for r in rows}):
        entries = []
        for bits in sorted({r["w_bits"] for r in rows if r["model"] == model}):
            same = [r for r in rows if r["model"] == model and r["w_bits"] == bits and r["a_bits"] == bits
                    and r["weights"] == r["acts"]]
            ints = [r for r in same if r["w_kind"] == "int"]
            fps = [r for r in same if r["w_kind"] == "fp"]
            if not ints and not fps:
                continue
            best = (lambda rs: max(rs, key=lambda r: r["accuracy"]) if rs else None)
            entries.append({"bits": bits, "int": best(ints), "minifloat": best(fps)})
        table[model] = entries
    return table


#: the follow-up paper's (Damsgaard et al., IEEE TCAD 2025) minifloat MAC resources relative to integer MACs of the
#: same operand size: 20-180 % more, 60-300 % more including the conversion back to float (/work/shared/REFERENCE.md)
PAPER_MAC_EXTRA = (0.20, 1.80)
PAPER_MAC_EXTRA_WITH_CONVERSION = (0.60, 3.00)


def paper_table(rows, compare):
    """Per model and width, for aggregated W = A rows (``compiler.dse.stats.aggregate``): the best integer and the
    best minifloat (highest mean accuracy), ``verdict`` of minifloat against integer by the noise rule ``compare``,
    the LUT-only MAC LUTs of each and their ratio (``mac_ratio``: best minifloat / integer; ``mac_ratio_range``:
    the smallest and largest ratio over every minifloat of that width), and the paper's range for comparison."""
    table = {}
    for model, entries in side_by_side(rows).items():
        for e in entries:
            i, f = e["int"], e["minifloat"]
            e["verdict"] = compare(f, i) if i and f else None
            base = i.get("LUT_mac_lutonly") if i else None
            e["mac_ratio"] = f["LUT_mac_lutonly"] / base if base and f and f.get("LUT_mac_lutonly") else None
            ratios = [r["LUT_mac_lutonly"] / base for r in rows
                      if base and r["model"] == model and r["w_kind"] == "fp" and r["w_bits"] == e["bits"]
                      and r["weights"] == r["acts"] and r.get("LUT_mac_lutonly")]
            e["mac_ratio_range"] = (min(ratios), max(ratios)) if ratios else None
            e["paper_extra"] = PAPER_MAC_EXTRA
            e["paper_extra_with_conversion"] = PAPER_MAC_EXTRA_WITH_CONVERSION
        table[model] = entries
    return table
