"""Mixed-precision search: per-layer weight formats (minifloat or integer) that beat a uniform format under a LUT
budget.

``mixed_precision_search`` runs single-layer sensitivity probes from the start format, then combines moves greedily
by predicted accuracy per LUT (``_plans``; savings on the least sensitive layers, chosen by the knapsack ``_fund``,
pay for upgrades), measuring every combination it tries. ``layer_alternatives`` picks the formats a layer may move
to from the uniform points.
"""

import time

from compiler.dse.floats import _config
from compiler.dse.formats import format_bits
from compiler.dse.points import evaluate_point, run_points
from compiler.errors import ConfigError
from compiler.zoo import build_model


def weight_sites(task):
    """Names of the weight quantizer sites (one per layer) of a task's model."""
    model = build_model(task["model"], "float", **_config(task))
    return [name for name, site in model.quant_sites.items() if site["kind"] == "weight"]


def layer_alternatives(uniform_rows, start):
    """Formats a layer may move to from ``start`` in the mixed-precision search, cheapest uniform point first.

    From the uniform (W = A) rows of one model: the most accurate integer and the most accurate minifloat format at
    the nearest width below ``start``'s, at its width and at the nearest width above (rows with an error are
    skipped; ``start`` itself is not an alternative).
    """
    rows = [r for r in uniform_rows if not r.get("error")]
    if not any(r["weights"] == start for r in rows):
        raise ConfigError(f"mixed-precision start format {start!r} is not among the uniform points "
                          f"({sorted({r['weights'] for r in rows})})")
    bits = format_bits(start)
    widths = sorted({r["w_bits"] for r in rows})
    below = [w for w in widths if w < bits][-1:]
    above = [w for w in widths if w > bits][:1]
    chosen = []
    for width in below + [bits] + above:
        for kind in ("int", "fp"):
            same = [r for r in rows if r["w_bits"] == width and r["w_kind"] == kind]
            if same:
                best = max(same, key=lambda r: (r["accuracy"], -r["LUT"]))
                if best["weights"] != start:
                    chosen.append(best)
    return [r["weights"] for r in sorted(chosen, key=lambda r: r["LUT"])]


def _usable(row):
    """A row whose point failed counts as useless: accuracy -1 and infinite LUTs."""
    return row if not row.get("error") else dict(row, accuracy=-1.0, LUT=float("inf"))


class _Evaluator:
    """Evaluates weight-format configurations {site: format} of one base task, once each, and keeps the history."""

    def __init__(self, base_task, start, evaluate):
        self.base_task, self.start, self.evaluate = base_task, start, evaluate
        self.rows = {}
        self.history = []

    def key(self, config):
        return tuple(sorted((s, f) for s, f in config.items() if f != self.start))

    def task(self, config):
        return dict(self.base_task, w=self.start, overrides=dict(self.key(config)))

    def __call__(self, config):
        key = self.key(config)
        if key not in self.rows:
            self.rows[key] = _usable(self.evaluate(self.task(config)))
            self.history.append(self.rows[key])
        return self.rows[key]

    def prefetch(self, configs, jobs, progress=False):
        """Evaluate ``configs`` ahead in ``jobs`` local processes (``run_points``; their rows land in the point
        cache, so the calls in search order are instant). Only with the default ``evaluate_point``."""
        if jobs > 1 and self.evaluate is evaluate_point:
            run_points([self.task(c) for c in configs if self.key(c) not in self.rows], jobs=jobs, progress=progress)


def _probe_sensitivities(run, sites, start, alternatives, origin, progress):
    """Single-layer probes: every layer alone at every alternative format, the others at ``start``.

    Returns {site: {format: {"accuracy", "LUT", "accuracy_delta", "lut_delta"}}} with deltas against ``origin``
    (the start format itself is the entry with zero deltas).
    """
    table = {}
    for s in sites:
        table[s] = {start: {"accuracy": origin["accuracy"], "LUT": origin["LUT"], "accuracy_delta": 0.0,
                            "lut_delta": 0.0}}
        for f in alternatives:
            row = run({s: f})
            table[s][f] = {"accuracy": row["accuracy"], "LUT": row["LUT"],
                           "accuracy_delta": row["accuracy"] - origin["accuracy"],
                           "lut_delta": row["LUT"] - origin["LUT"]}
            if progress:
                print(f"  mixed: probe {s} -> {f}: {100 * table[s][f]['accuracy_delta']:+.2f} % accuracy, "
                      f"{table[s][f]['lut_delta']:+.0f} LUT", flush=True)
    return table


def _move(table, config, site, fmt):
    """(predicted accuracy gain, LUT change) of moving ``site`` from its current format to ``fmt``."""
    now, new = table[site][config[site]], table[site][fmt]
    return new["accuracy_delta"] - now["accuracy_delta"], new["lut_delta"] - now["lut_delta"]


def _fund(table, config, needed, exclude, buckets=400):
    """Savings moves (at most one per layer outside ``exclude``) that recover at least ``needed`` LUTs with the least
    predicted accuracy loss (a multiple-choice knapsack over the single-layer probes, LUTs counted in ``buckets``
    steps rounded down, so a plan found really recovers ``needed``). Returns ({site: format}, predicted loss) or None
    when all savings together cannot recover enough."""
    step = max(needed / buckets, 1.0)
    target = int(-(-needed // step))
    best = {0: (0.0, {})}  # recovered steps (capped at target) -> (least loss, moves)
    for s in table:
        if s in exclude:
            continue
        options = []
        for f in table[s]:
            gain, dlut = _move(table, config, s, f)
            if f != config[s] and dlut < 0:
                options.append((-gain, int(-dlut // step), f))
        merged = dict(best)
        for units, (loss, moves) in best.items():
            for move_loss, move_units, f in options:
                reached = min(units + move_units, target)
                if reached not in merged or loss + move_loss < merged[reached][0]:
                    merged[reached] = (loss + move_loss, dict(moves, **{s: f}))
        best = merged
    if target not in best:
        return None
    loss, moves = best[target]
    return moves, loss


def _plans(table, config, current, budget_lut):
    """Candidate combined moves from ``config``, best predicted accuracy per LUT first.

    A plan upgrades one layer to a format whose single-layer probe predicts a gain over its current format; when
    the predicted LUT total leaves the budget, savings moves on the least sensitive other layers pay for it. Over
    budget (a start above the budget), the only plan is the cheapest-loss recovery down to the budget.
    """
    if current["LUT"] > budget_lut:
        funded = _fund(table, config, current["LUT"] - budget_lut, exclude=())
        if funded is None:
            return []
        return [(funded[0], -funded[1], sum(_move(table, config, t, g)[1] for t, g in funded[0].items()))]
    plans = []
    for s in table:
        for f in table[s]:
            gain, dlut = _move(table, config, s, f)
            if f == config[s] or gain <= 0:
                continue
            moves, net_gain, net_lut = {s: f}, gain, dlut
            over = current["LUT"] + dlut - budget_lut
            if over > 0:
                funded = _fund(table, config, over, exclude={s})
                if funded is None:
                    continue
                moves.update(funded[0])
                net_gain -= funded[1]
                net_lut = sum(_move(table, config, t, g)[1] for t, g in moves.items())
            if net_gain > 0:
                plans.append((moves, net_gain, net_lut))
    # LUT-neutral or -saving gains first (largest gain), then gain per extra LUT
    return sorted(plans, key=lambda p: (p[2] > 0, -p[1] if p[2] <= 0 else -p[1] / p[2]))


def mixed_precision_search(base_task, start, alternatives, budget_lut, progress=True, max_trials=None,
                           evaluate=None, sites=None, jobs=1):
    """Sensitivity-guided (top-down) per-layer weight-format search under a LUT budget.

    Activations stay at ``base_task['a']``. The search starts with every weight layer at ``start`` (normally the
    best uniform format within the budget, so the result is never below it; a richer start above the budget is
    first brought down to the budget), then

    1. probes each layer alone at each of ``alternatives`` (minifloat or integer formats, e.g. from
       ``layer_alternatives``): its accuracy change and LUT change against the start (LUTs are exactly additive
       per layer, accuracy approximately);
    2. greedily combines moves: the plan with the best predicted accuracy gain per extra LUT (see ``_plans``) is
       evaluated; it is kept when it is within the budget and really more accurate than the current
       configuration (or as accurate with fewer LUTs), otherwise the next plan is tried; after a kept plan the
       plans are recomputed. The search stops when no plan is left or after ``max_trials`` combined evaluations
       (default 2 per layer).

    ``evaluate`` (default ``evaluate_point``) maps a task to a row with ``accuracy`` and ``LUT``; ``sites`` default
    to the model's weight quantizer sites; ``jobs`` local processes run the single-layer probes (independent of
    each other) ahead of the search. Returns (best row within the budget, or the cheapest row when none fits;
    evaluated rows in order; a report with the sensitivities, the tried plans and the runtime).
    """
    t0 = time.perf_counter()
    sites = list(sites or weight_sites(base_task))
    alternatives = [f for f in dict.fromkeys(alternatives) if f != start]
    if not sites or not alternatives:
        raise ConfigError(f"mixed-precision search needs weight layers and alternative formats; got sites {sites}, "
                          f"alternatives {alternatives} (start {start!r})")
    run = _Evaluator(base_task, start, evaluate or evaluate_point)
    config = {s: start for s in sites}
    origin = current = run(config)
    run.prefetch([dict(config, **{s: f}) for s in sites for f in alternatives], jobs, progress)
    table = _probe_sensitivities(lambda moves: run(dict(config, **moves)), sites, start, alternatives, origin,
                                 progress)
    trials, steps = 0, []
    max_trials = 2 * len(sites) if max_trials is None else max_trials
    while trials < max_trials:
        kept = False
        for moves, net_gain, net_lut in _plans(table, config, current, budget_lut):
            trial = dict(config, **moves)
            measured = run.key(trial) in run.rows  # e.g. a single-layer probe: its row decides without a new run
            if not measured and trials >= max_trials:
                break
            trials += 0 if measured else 1
            row = run(trial)
            over_before = current["LUT"] > budget_lut
            keep = (row["LUT"] < current["LUT"]) if over_before else (
                row["LUT"] <= budget_lut and (row["accuracy"], -row["LUT"]) > (current["accuracy"], -current["LUT"]))
            steps.append({"moves": moves, "predicted_accuracy_delta": net_gain, "predicted_lut_delta": net_lut,
                          "accuracy": row["accuracy"], "LUT": row["LUT"], "kept": keep})
            if progress:
                print(f"  mixed: try {moves}: predicted {100 * net_gain:+.2f} % / {net_lut:+.0f} LUT, measured "
                      f"{100 * row['accuracy']:.2f} % at {row['LUT']:.0f} LUT -> {'kept' if keep else 'rejected'}",
                      flush=True)
            if keep:
                config, current, kept = trial, row, True
                break
        if not kept:
            break
    fitting = [r for r in run.history if r["LUT"] <= budget_lut]
    best = (max(fitting, key=lambda r: (r["accuracy"], -r["LUT"])) if fitting
            else min(run.history, key=lambda r: r["LUT"]))
    report = {
        "algorithm": "top-down sensitivity: single-layer probes from the start format, then greedy combination by "
                     "predicted accuracy gain per LUT (savings on the least sensitive layers pay for upgrades), "
                     "each combination measured",
        "start": start, "acts": base_task["a"], "alternatives": alternatives, "sites": sites,
        "start_accuracy": origin["accuracy"], "start_LUT": origin["LUT"],
        "sensitivity": {s: _summary(table[s], start) for s in sites},
        "steps": steps, "probes": len(sites) * len(alternatives), "trials": trials,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return best, run.history, report


def _summary(probes, start):
    """One layer's probes plus its sensitivity: the largest accuracy drop and the largest gain of any probe."""
    alt = {f: p for f, p in probes.items() if f != start}
    deltas = [p["accuracy_delta"] for p in alt.values()]
    return {"probes": alt, "max_drop": max(0.0, -min(deltas)), "max_gain": max(0.0, max(deltas))}
