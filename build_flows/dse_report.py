"""The format study's results page: ``index.html`` and ``README.md`` in the output folder (build_flows/dse.py).

Both hold the same tables: per model and width the paper's claims next to our numbers (best integer and best
minifloat accuracy as mean ± std over the training seeds, the noise-rule verdict, LUT-only MAC LUTs, whole-design
LUT / DSP / BRAM with DSPs, the minifloat / integer MAC LUT ratio next to the follow-up paper's range), the
MAC / requantizer / memory / other breakdown of every point in both cost variants, and the list of failed points.
"""

import html

#: (cost key, Pareto flag, label): the fronts the study flags (build_flows/dse.py) and the page lists
PARETO_COSTS = (("LUT", "pareto_lut", "LUT with DSPs"), ("LUT_lutonly", "pareto_lut_lutonly", "LUT-only LUT"),
                ("weight_bits", "pareto_memory", "weight memory [bits]"))

#: the paper's claims the table is read against (/work/shared/REFERENCE.md section 1)
PAPER_CLAIMS = (
    ("Aggarwal et al. (FPL 2024): minifloat quantization typically outperforms integer quantization for bit-widths of "
    "four or more, yet integer quantization often stays Pareto-optimal because of its slightly smaller hardware "
    "footprint (MACs in LUTs, conversion back to float not costed)."),
    ("Damsgaard et al. (IEEE TCAD 2025): minifloat MACs use 20-180 % more resources than integer MACs of the same "
    "operand size, 60-300 % more including the conversion back to float, i.e. a ratio of 1.2-2.8 (1.6-4.0)."),
)

_SIDE_COLUMNS = ("bits", "best integer", "acc ± std", "best minifloat", "acc ± std", "minifloat vs integer",
                 "MAC LUT int (LUT-only)", "MAC LUT mf (LUT-only)", "mf/int MAC ratio (range over ExMy)",
                 "paper ratio", "vs paper", "design LUT / DSP / BRAM18 int", "design LUT / DSP / BRAM18 mf")

#: why our MAC ratio can differ from the follow-up paper's (written under the tables)
DIFFERENCES = (
    "Where the MAC ratio differs from the paper's: our MAC LUTs are the whole MAC arrays of the network folded to one "
    "throughput (every layer at the same cycles per frame), from Yosys-fitted xc7 LUT models, not one MAC "
    "post-implementation on Versal; an INTn MAC multiplies n x n bits while an ExMy MAC multiplies (M+1) x (M+1) "
    "bit significands and pays for the exponent shift and a wider accumulator, so at equal width a minifloat with "
    "few mantissa bits can be cheaper than the integer (ratio < 1) and one with many exponent bits dearer; the "
    "conversion back (the paper's 'with conversion') is our requantizer, reported apart.")


def _acc(r):
    return f"{100 * r['accuracy']:.2f} ± {100 * r['accuracy_std']:.2f} % (n={r['seeds']})" if r else "-"


def _design(r):
    return f"{r['LUT']:.0f} / {r['DSP']:.0f} / {r['BRAM_18K']:.0f}" if r else "-"


def side_cells(e):
    """The cells of one width's row of the side-by-side table."""
    i, f = e["int"], e["minifloat"]
    lo, hi = e["paper_extra"]
    clo, chi = e["paper_extra_with_conversion"]
    rng = e["mac_ratio_range"]
    ratio = "-" if e["mac_ratio"] is None else (f"{e['mac_ratio']:.2f}"
                                                + (f" ({rng[0]:.2f}-{rng[1]:.2f})" if rng else ""))
    return [str(e["bits"]), i["weights"] if i else "-", _acc(i), f["weights"] if f else "-", _acc(f),
            e["verdict"] or "-", f"{i['LUT_mac_lutonly']:.0f}" if i else "-",
            f"{f['LUT_mac_lutonly']:.0f}" if f else "-", ratio,
            f"{1 + lo:.1f}-{1 + hi:.1f} ({1 + clo:.1f}-{1 + chi:.1f} with conversion)", _vs_paper(e), _design(i),
            _design(f)]


def _vs_paper(e):
    """Whether the best minifloat's MAC ratio lies in the follow-up paper's range (without conversion)."""
    if e["mac_ratio"] is None:
        return "-"
    lo, hi = (1 + x for x in e["paper_extra"])
    if e["mac_ratio"] < lo:
        return "below (minifloat MACs cheaper)"
    return "above" if e["mac_ratio"] > hi else "within"


def breakdown_cells(r):
    """model, W, A, then LUT of mac / requant / memory / other with DSPs and LUT-only, and the DSPs."""
    cells = [r["model"], r["weights"], r["acts"]]
    for key in ("breakdown", "breakdown_lutonly"):
        parts = r.get(key) or {}
        cells += [f"{parts.get(c, {}).get('LUT', 0):.0f}" for c in ("mac", "requant", "memory", "other")]
    cells.append(f"{r['DSP']:.0f}")
    return cells


_BREAKDOWN_COLUMNS = ("model", "W", "A", "MAC", "requant", "memory", "other", "MAC (LUT-only)", "requant (LUT-only)",
                      "memory (LUT-only)", "other (LUT-only)", "DSP")


def pareto_cells(rows):
    """[model, cost, the formats on its front cheapest first with mean accuracy and cost, integers on the front] per
    model and cost of ``PARETO_COSTS`` (the paper's second claim: integers often stay Pareto-optimal)."""
    out = []
    for model in sorted({r["model"] for r in rows}):
        for key, flag, label in PARETO_COSTS:
            front = sorted((r for r in rows if r["model"] == model and r.get(flag)), key=lambda r: r[key])
            ints = [r["weights"] for r in front if r["weights"].startswith(("int:", "uint:"))]
            members = ", ".join(f"{r['weights']} {100 * r['accuracy']:.2f} % / {r[key]:,.0f}" for r in front)
            named = f" ({', '.join(ints)})" if ints else ""
            out.append([model, label, members, f"{len(ints)} of {len(front)}{named}"])
    return out


_PARETO_COLUMNS = ("model", "cost", "front: format mean accuracy / cost, cheapest first", "integers on the front")
_PARETO_NOTE = ("Fronts over the mean accuracies (no noise rule: a point a tie away from the front is as good within "
                "the seeds' spread).")


def _intro(run):
    return ("Hardware-exact accuracy (the lowered graph's arithmetic) as mean ± sample std over independently trained "
            "float models (training seeds), against the compiler's estimates of the whole hardware graph at one "
            "cycles-per-frame target. 'minifloat vs integer' applies the noise rule: better or worse only when the "
            "difference of the means exceeds sqrt(noise_int^2 + noise_mf^2), noise = max(seed std, binomial standard "
            "error of the test images); otherwise tie. Costs twice: with DSPs (the compiler's default) and LUT-only "
            "(MACs and requantizer multipliers in LUTs: the paper's basis; ops without a DSP switch, LayerNorm and softmax, "
            "keep theirs). The best format of each kind is picked by its mean on the same test images, which favours "
            "the kind with more formats at a width slightly. MAC = the multiply-accumulate datapath "
            "as the ops report it (resource_breakdown); requantizers, memories and other ops apart."
            + (f" Run: {run.get('seconds', '?')} s wall, arguments {' '.join(map(str, run.get('argv', [])))}"
               + (f"; the points' own compute time, summed over processes and seeds (cached points keep the time "
                  f"they took when computed; float-model training not included): {run['point_seconds']} s"
                  if "point_seconds" in run else "") + "." if run else ""))


def markdown(rows, table, failed, run):
    lines = ["# Format study: minifloat vs integer (generated by build_flows/dse.py)", "", _intro(run), "",
             "Paper claims:", ""] + [f"- {c}" for c in PAPER_CLAIMS] + [""]
    for model, entries in table.items():
        lines += [f"## {model}: paper side by side, W = A", "", "| " + " | ".join(_SIDE_COLUMNS) + " |",
                  "|" + "---|" * len(_SIDE_COLUMNS)]
        lines += ["| " + " | ".join(side_cells(e)) + " |" for e in entries]
        lines.append("")
    lines += [DIFFERENCES, ""]
    lines += ["## Pareto fronts (mean accuracy against cost)", "", _PARETO_NOTE, "",
              "| " + " | ".join(_PARETO_COLUMNS) + " |", "|" + "---|" * len(_PARETO_COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in pareto_cells(rows)]
    lines.append("")
    lines += ["## Cost breakdown (LUT by category; mean over seeds)", "", "| " + " | ".join(_BREAKDOWN_COLUMNS) + " |",
              "|" + "---|" * len(_BREAKDOWN_COLUMNS)]
    lines += ["| " + " | ".join(breakdown_cells(r)) + " |" for r in sorted(rows, key=lambda r: (r["model"], r["LUT"]))]
    if failed:
        lines += ["", "## Points that could not be built", ""]
        lines += [f"- {r['model']} W {r['weights']} A {r['acts']} seed {r.get('seed', 0)}: {r['error']}" for r in failed]
    return "\n".join(lines) + "\n"


def _table(columns, rows):
    esc = html.escape
    out = ["<table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in cells) + "</tr>" for cells in rows]
    return out + ["</table>"]


def html_page(rows, table, failed, run):
    esc = html.escape
    style = ("<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;border-bottom:1px solid #ddd}"
             "td{text-align:right}</style></head><body>")
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>minifinn format study</title>", style, "<h1>minifinn format study: minifloat vs integer</h1>",
             f"<p>{esc(_intro(run))}</p>", "<ul>" + "".join(f"<li>{esc(c)}</li>" for c in PAPER_CLAIMS) + "</ul>",
             "<img src='pareto.png' style='max-width:100%'>"]
    for model, entries in table.items():
        parts.append(f"<h2>{esc(model)}: paper side by side, minifloat vs integer at equal width (W = A)</h2>")
        parts += _table(_SIDE_COLUMNS, [side_cells(e) for e in entries])
    parts.append(f"<p>{esc(DIFFERENCES)}</p>")
    parts.append(f"<h2>Pareto fronts (mean accuracy against cost)</h2><p>{esc(_PARETO_NOTE)}</p>")
    parts += _table(_PARETO_COLUMNS, pareto_cells(rows))
    parts.append("<h2>Cost breakdown (LUT by category; mean over seeds)</h2>")
    parts += _table(_BREAKDOWN_COLUMNS, [breakdown_cells(r) for r in sorted(rows, key=lambda r: (r["model"], r["LUT"]))])
    parts.append("<h2>All points</h2>")
    cols = ("model", "W", "A", "PTQ", "accuracy ± std", "LUT", "DSP", "BRAM_18K", "LUT (LUT-only)", "weight bits",
            "Pareto (LUT, LUT-only, memory)", "hardware graph")
    parts += _table(cols, [[r["model"], r["weights"], r["acts"], r["ptq"], _acc(r), f"{r['LUT']:.0f}",
                            f"{r['DSP']:.0f}", f"{r['BRAM_18K']:.0f}", f"{r.get('LUT_lutonly', 0):.0f}",
                            r["weight_bits"], " / ".join("yes" if r.get(f) else "-" for _, f, _ in PARETO_COSTS),
                            f"{100 * r['accuracy_hw']:.1f} % on {r['hw_images']}, agrees "
                            f"{100 * r['hw_lowered_agreement']:.1f} %" if r.get("hw_images") else "-"]
                           for r in sorted(rows, key=lambda r: (r["model"], r["LUT"]))])
    if failed:
        parts.append("<h2>Points that could not be built</h2><ul>")
        parts += [f"<li>{esc(r['model'])} W {esc(r['weights'])} A {esc(r['acts'])} seed {r.get('seed', 0)}: "
                  f"{esc(r['error'])}</li>" for r in failed]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(rows, table, failed, out, run):
    """Write ``index.html`` and ``README.md`` into ``out``."""
    (out / "index.html").write_text(html_page(rows, table, failed, run))
    (out / "README.md").write_text(markdown(rows, table, failed, run))
