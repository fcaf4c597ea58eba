"""Training-seed statistics of the format study and its noise rule.

Every point is measured on several independently trained float models (``seed``, compiler/dse/floats.py).
``aggregate`` turns the per-seed rows into one row per (model, W, A, overrides): ``accuracy`` = the mean over the
seeds, ``accuracy_std`` the sample standard deviation (ddof 1; 0 for one seed), ``seeds`` the count, ``noise`` the
point's noise: the larger of the seed spread and the binomial standard error of an accuracy measured on ``images``
test images (sqrt(p (1 - p) / images), so one seed is not free of noise). Costs are the seeds' means (the network's
structure is the same; per-seed scales can only move the requantizer widths slightly).

Noise rule (``compare``): format A is *better* than B only when mean(A) - mean(B) > sqrt(noise_A^2 + noise_B^2)
(the spread of a difference of two independent draws), *worse* when it is below minus that, otherwise *tie*.
"""

import math
import statistics

#: numeric fields averaged over the seeds of a point (the others are taken from its first seed)
_MEAN_FIELDS = ("accuracy", "accuracy_qonnx", "accuracy_hw", "hw_lowered_agreement", "LUT", "FF", "BRAM_18K", "DSP",
                "LUT_mvau", "LUT_mac", "LUT_lutonly", "FF_lutonly", "BRAM_18K_lutonly", "DSP_lutonly",
                "LUT_mvau_lutonly", "LUT_mac_lutonly", "seconds")


def point_group(row):
    """The identity of a point without its seed."""
    return (row["model"], row["weights"], row["acts"], row.get("first_last"),
            tuple(sorted((row.get("overrides") or {}).items())))


def _mean_breakdown(parts):
    cats = parts[0].keys()
    return {c: {k: round(statistics.fmean(p[c][k] for p in parts), 1) for k in parts[0][c]} for c in cats}


def aggregate(rows):
    """One row per point group (``point_group``), in first-seen order (module docstring); ``per_seed`` keeps the
    seeds' accuracies in seed order."""
    groups = {}
    for row in rows:
        groups.setdefault(point_group(row), []).append(row)
    out = []
    for members in groups.values():
        members = sorted(members, key=lambda r: r.get("seed", 0))
        agg = dict(members[0])
        for k in _MEAN_FIELDS:
            vals = [r[k] for r in members if r.get(k) is not None]
            if vals:
                agg[k] = statistics.fmean(vals)
        for k in ("breakdown", "breakdown_lutonly"):
            if all(k in r for r in members):
                agg[k] = _mean_breakdown([r[k] for r in members])
        accs = [r["accuracy"] for r in members]
        agg["seeds"] = len(members)
        agg["per_seed"] = accs
        agg["accuracy_std"] = statistics.stdev(accs) if len(accs) > 1 else 0.0
        p, n = agg["accuracy"], max(1, int(members[0].get("images") or 1))
        agg["noise"] = max(agg["accuracy_std"], math.sqrt(max(p * (1 - p), 0.0) / n))
        agg.pop("seed", None)
        out.append(agg)
    return out


def compare(a, b):
    """"better", "worse" or "tie" for aggregated rows a vs b by the noise rule (module docstring)."""
    diff = a["accuracy"] - b["accuracy"]
    noise = math.sqrt(a["noise"] ** 2 + b["noise"] ** 2)
    if diff > noise:
        return "better"
    if diff < -noise:
        return "worse"
    return "tie"
