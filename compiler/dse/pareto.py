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
