"""``step_synth_check``: every node's generated RTL synthesized with Yosys next to the node's resource estimate.

An optional build step after ``step_hw_codegen`` (``minifinn build --synth-check``, the flows' ``--synth-check``).
Each ``_rtl`` node's sources (``get_rtl_file_list(abspath=True)``, top ``get_verilog_top_module_name()``) go through
``synth_xilinx`` for the FPGA family of the board's part (``synth_family``) with DSP inference on
(``synth_check_dsp = False`` passes ``-nodsp``, for a LUT-only check). Yosys' counts, in the estimates' units:
LUT = logic + LUTRAM + SRL LUTs (``SynthResult.lut_total``), FF, DSP, BRAM_18K = 2 x BRAM36 (a RAMB18 is half a
RAMB36), URAM. The estimate is the node's own ``node_res_estimation`` (what FINN's ``res_estimation`` and the
estimate reports show).

Nodes whose designs are the same synthesize once: the top wrapper is renamed to one canonical module, and memory
files are read from copies under their base names (``compiler.synth.localize_data_files``), so only the Verilog text
and the contents of the ``$readmemh`` files decide; the Yosys cache (``compiler.synth``) keeps results across builds
by the same content hash. Distinct designs run ``SYNTH_JOBS`` at a time with a progress bar.

``OUTPUT_DIR/report/synth_check.json``: one row per node (name, op, requantizer, status "ok" | "skipped" | "failed"
with the reason or Yosys' error, the design it shares, estimate, Yosys counts, error per resource), totals over the
synthesized nodes (estimate and Yosys, the sum of those rows), the estimate over all nodes, the board budget and
each total's share of it. The error of a resource is ``(yosys - estimate) / estimate`` (positive: the estimate is
low; ``None`` where the estimate is 0 and Yosys is not). ``synth_check.md`` shows the same as tables. HLS nodes are
skipped (their RTL comes from Vitis HLS). A node Yosys fails on is a "failed" row and the step goes on; with
``synth_check_strict`` the step then fails, naming those nodes.
"""

import hashlib
import json
import re
import time
from pathlib import Path

from qonnx.custom_op.registry import getCustomOp

from compiler.boards import get_board
from compiler.errors import ConfigError, MinifinnError
from compiler.synth import (
    SynthesisError,
    SynthJob,
    SynthResult,
    localize_data_files,
    synthesize_many,
    yosys_version,
)
from finn.util.fpgadataflow import is_hls_node, is_rtl_node
from passes.resource_folding import folding_record

#: resources compared, in the estimates' units
RESOURCES = ("LUT", "FF", "DSP", "BRAM_18K", "URAM")
#: Yosys processes at once
SYNTH_JOBS = 2
#: the module name every node's top wrapper is synthesized as (so equal designs of differently named nodes are one)
CANONICAL_TOP = "mf_synth_top"


class SynthCheckError(MinifinnError):
    """The synthesis check cannot run (unknown FPGA family) or, with ``synth_check_strict``, nodes failed."""


def synth_family(part):
    """Yosys ``synth_xilinx -family`` of an FPGA part: 7-series (xc7z020) "xc7"; UltraScale+ "xcup" (Zynq
    UltraScale+ xczu*, Kria xck26, the Alveo cards xcu50/xcu55c/xcu200/xcu250/xcu280, which are Virtex UltraScale+
    dies, and xcku*p/xcvu*p); UltraScale (xcku*/xcvu* without the "p") "xcu"."""
    p = str(part).lower()
    if p.startswith("xc7"):
        return "xc7"
    if p.startswith(("xczu", "xck2")) or re.match(r"xcu\d", p) or re.match(r"xc(ku|vu)\d+p", p):
        return "xcup"
    if re.match(r"xc(ku|vu)\d+", p):
        return "xcu"
    raise SynthCheckError(f"no Yosys family for FPGA part {part!r}: synth_xilinx knows 7-series (xc7*), UltraScale "
                          "(xcku*, xcvu*) and UltraScale+ (xczu*, xck26, xcu50/55c/200/250/280, xcku*p, xcvu*p)")


def with_synth_check(steps):
    """``steps`` (names or callables) with ``step_synth_check`` right after ``step_hw_codegen`` (unchanged when it
    is already there)."""
    steps = list(steps)
    names = [s if isinstance(s, str) else getattr(s, "step_name", getattr(s, "__name__", "")) for s in steps]
    if "step_synth_check" in names:
        return steps
    if "step_hw_codegen" not in names:
        raise ConfigError(f"the synthesis check needs step_hw_codegen among the build steps; steps: {names}")
    steps.insert(names.index("step_hw_codegen") + 1, "step_synth_check")
    return steps


def node_design(inst):
    """The synthesis job of an RTL node: its sources with the top renamed ``CANONICAL_TOP`` (also the top file's
    name) and memory files as local copies; returns ``(SynthJob, digest)``, equal digests = the same design.

    Paths into the node's code directory that name no file (the memory parameters of a part the node does not use,
    e.g. the thresholds of an MVAU without activation) become their base names, so they do not tell nodes apart
    either."""
    top = inst.get_verilog_top_module_name()
    files = [Path(f) for f in inst.get_rtl_file_list(abspath=True)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SynthesisError(f"generated RTL missing ({', '.join(missing[:3])}); run step_hw_codegen first")
    top_re = re.compile(rf"\b{re.escape(top)}\b")
    srcs = [(f"{CANONICAL_TOP}{f.suffix}" if f.stem == top else f.name, top_re.sub(CANONICAL_TOP, f.read_text()))
            for f in files]
    srcs, data = localize_data_files(srcs)
    code_dirs = {str(f.parent) for f in files}
    # memory files the Verilog names from a prefix at elaboration (e.g. the binary-search stages'
    # <prefix>_p<lane>_s<stage>.hex) are not literal paths in the text: every .hex file of the node comes along
    have = {name for name, _ in data}
    data += [(f.name, f.read_bytes()) for d in sorted(code_dirs) for f in sorted(Path(d).glob("*.hex"))
             if f.name not in have]
    unused = re.compile("|".join(rf'"{re.escape(d)}/([^"/\n]+)"' for d in sorted(code_dirs)))
    srcs = [(name, unused.sub(lambda m: f'"{next(g for g in m.groups() if g)}"', text)) for name, text in srcs]
    h = hashlib.sha256()
    for name, text in srcs:
        h.update(f"{name}\0{hashlib.sha256(text.encode()).hexdigest()}\0".encode())
    for name, content in data:
        h.update(f"{name}\0{hashlib.sha256(content).hexdigest()}\0".encode())
    return SynthJob(tuple(srcs), CANONICAL_TOP, (), (("data_files", tuple(data)),)), h.hexdigest()


def yosys_counts(res):
    """A ``SynthResult`` in the estimates' units (``RESOURCES``), plus the split of the LUTs and the carry cells."""
    return ({"LUT": res.lut_total, "FF": res.ff, "DSP": res.dsp, "BRAM_18K": 2 * res.bram36, "URAM": res.uram},
            {"lut_logic": res.lut, "lutram": res.lutram, "srl": res.srl, "carry": res.carry, "muxf7": res.muxf7,
             "muxf8": res.muxf8, "latch": res.latch, "inv": res.cells.get("INV", 0), "bram36": res.bram36})


def relative_error(estimate, yosys):
    """``(yosys - estimate) / estimate``; 0 when both are 0, ``None`` when the estimate is 0 (or either missing)."""
    if estimate is None or yosys is None:
        return None
    if estimate == 0:
        return 0.0 if yosys == 0 else None
    return (yosys - estimate) / estimate


def _errors(est, syn):
    return {k: relative_error(est.get(k), syn.get(k)) for k in RESOURCES}


def _estimate(inst, part):
    res = inst.node_res_estimation(part)
    return {k: (float(res[k]) if res.get(k) is not None else None) for k in RESOURCES}


def _requantizer(inst):
    """The op's requantizer (``requantizer()``) and, where the node records one, its style (``requantStyle``)."""
    if not hasattr(inst, "requantizer"):
        return "—"
    req = inst.requantizer()
    if "requantStyle" in inst.get_nodeattr_types() and inst.get_nodeattr("requantStyle"):
        req = f"{req} ({inst.get_nodeattr('requantStyle')})"
    return req


def _sum(rows, side):
    return {k: sum(r[side][k] or 0 for r in rows) for k in RESOURCES}


def synth_check(model, board, part=None, *, dsp=True, n_jobs=SYNTH_JOBS, progress=True, cache_dir=None,
                utilization=None):
    """Synthesize every RTL node of the dataflow ``model`` for ``board`` (name or ``Board``; ``part`` overrides
    its FPGA part) and compare with the estimates; returns the report (see the module docstring)."""
    t0 = time.monotonic()
    board = get_board(board) if isinstance(board, str) else board
    part = part or board.part
    family = synth_family(part)
    rows, jobs, labels, digests = [], [], [], {}  # digest -> index into jobs
    for node in model.graph.node:
        hw = is_rtl_node(node) or is_hls_node(node)
        inst = getCustomOp(node) if hw else None
        row = {"name": node.name, "op": node.op_type, "requantizer": _requantizer(inst) if hw else "—",
               "status": "ok", "estimate": _estimate(inst, part) if hw else None}
        rows.append(row)
        if not is_rtl_node(node):
            row["status"] = "skipped"
            row["reason"] = ("HLS node: its RTL comes from Vitis HLS, which this check does not run"
                             if is_hls_node(node) else "not a specialized hardware node (no RTL)")
            continue
        try:
            job, digest = node_design(inst)
        except (SynthesisError, OSError) as err:
            row.update(status="failed", error=str(err))
            continue
        if digest not in digests:
            digests[digest] = len(jobs)
            jobs.append(job)
            labels.append(node.name)
        row["_job"] = digests[digest]
    results = synthesize_many(jobs, n_jobs=n_jobs, progress=progress, desc="synth_check", on_error="keep",
                              labels=labels, family=family, dsp=dsp, cache_dir=cache_dir) if jobs else []
    first_of = {}
    for row in rows:
        if "_job" not in row:
            continue
        i = row.pop("_job")
        res = results[i]
        if i in first_of:
            row["same_design_as"] = first_of[i]
        else:
            first_of[i] = row["name"]
        if isinstance(res, SynthesisError):
            row.update(status="failed", error=str(res))
            continue
        row["yosys"], row["yosys_detail"] = yosys_counts(res)
        row["error"] = _errors(row["estimate"], row["yosys"])
        row.update(cached=res.cached, yosys_seconds=res.runtime_s)
    ok = [r for r in rows if r["status"] == "ok"]
    estimated = [r for r in rows if r["estimate"] is not None]
    total = {"estimate": _sum(ok, "estimate"), "yosys": _sum(ok, "yosys")}
    total["error"] = _errors(total["estimate"], total["yosys"])
    if utilization is None:
        record = folding_record(model)
        utilization = record["utilization_limit"] if record else 0.8
    budget = {k: board.resources.get(k, 0) for k in RESOURCES}
    return {
        "board": board.name, "part": part, "family": family, "dsp": bool(dsp),
        "yosys_version": yosys_version() if jobs else None, "resources": list(RESOURCES),
        "error_definition": "(yosys - estimate) / estimate",
        "nodes": rows,
        "counts": {"nodes": len(rows), "synthesized": len(ok), "designs": len(jobs),
                   "skipped": sum(r["status"] == "skipped" for r in rows),
                   "failed": sum(r["status"] == "failed" for r in rows),
                   "yosys_runs": sum(isinstance(r, SynthResult) and not r.cached for r in results)},
        "total": total,
        "estimate_all_nodes": _sum(estimated, "estimate"),
        "budget": budget, "utilization_limit": utilization,
        "share": {side: {k: (total[side][k] / budget[k] if budget[k] else None) for k in RESOURCES}
                  for side in ("estimate", "yosys")},
        "wall_seconds": round(time.monotonic() - t0, 1),
    }


def _n(v):
    if v is None:
        return "—"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"


def _pct(e):
    return "—" if e is None else f"{100 * e:+.1f} %"


def _cell(row, k):
    est = row["estimate"][k] if row.get("estimate") else None
    if row["status"] != "ok":
        return f"{_n(est)} / —"
    e = row["error"][k]
    if e is None and est == 0:
        return f"0 / {_n(row['yosys'][k])} (est. 0)"
    return f"{_n(est)} / {_n(row['yosys'][k])} ({_pct(e)})"


def report_markdown(rep):
    """``synth_check.md``: per node estimate / Yosys (error), totals against the board, the largest LUT
    differences, skipped and failed nodes."""
    c = rep["counts"]
    lines = [f"# Synthesis check — {rep['board']} ({rep['part']}), Yosys synth_xilinx -family {rep['family']}"
             f"{'' if rep['dsp'] else ' -nodsp'}", "",
             f"{c['synthesized']} of {c['nodes']} nodes synthesized ({c['designs']} distinct designs, "
             f"{c['yosys_runs']} Yosys runs, the rest from the cache), {c['skipped']} skipped, {c['failed']} failed; "
             f"{rep['wall_seconds']:,.0f} s; {rep['yosys_version'] or 'Yosys not run'}.", "",
             "Cells: estimate / Yosys (error = (Yosys - estimate) / estimate). LUT = logic + LUTRAM + SRL; "
             "BRAM_18K = 2 x RAMB36.", "",
             "| node | op | requantizer | " + " | ".join(RESOURCES) + " | status |",
             "|" + "---|" * (len(RESOURCES) + 4)]
    for r in rep["nodes"]:
        status = r["status"] + (f" (= {r['same_design_as']})" if r.get("same_design_as") else "")
        lines.append(f"| {r['name']} | {r['op']} | {r['requantizer']} | "
                     + " | ".join(_cell(r, k) for k in RESOURCES) + f" | {status} |")
    t = rep["total"]
    lines.append("| **total (synthesized)** | | | " + " | ".join(
        f"{_n(t['estimate'][k])} / {_n(t['yosys'][k])} ({_pct(t['error'][k])})" for k in RESOURCES) + " | |")
    lim = rep["utilization_limit"]
    lines += ["", f"| resource | estimate | Yosys | error | board | estimate share | Yosys share | Yosys within "
              f"{lim:.0%} |", "|---|---|---|---|---|---|---|---|"]
    for k in RESOURCES:
        have = rep["budget"][k]
        est, syn = t["estimate"][k], t["yosys"][k]
        within = "—" if not have else ("yes" if syn <= lim * have else "NO")
        share = (lambda v: "—" if not have else f"{100 * v / have:.1f} %")
        lines.append(f"| {k} | {_n(est)} | {_n(syn)} | {_pct(t['error'][k])} | {_n(have)} | {share(est)} | "
                     f"{share(syn)} | {within} |")
    ok = [r for r in rep["nodes"] if r["status"] == "ok"]
    worst = sorted(ok, key=lambda r: -abs(r["yosys"]["LUT"] - (r["estimate"]["LUT"] or 0)))[:8]
    if worst:
        lines += ["", "Largest LUT differences (Yosys - estimate):", ""]
        lines += [f"- {r['name']} ({r['op']}): {_n(r['estimate']['LUT'])} estimated, {_n(r['yosys']['LUT'])} Yosys, "
                  f"{r['yosys']['LUT'] - (r['estimate']['LUT'] or 0):+,.0f} ({_pct(r['error']['LUT'])})"
                  for r in worst]
    others = [r for r in rep["nodes"] if r["status"] != "ok"]
    if others:
        lines += ["", "Not synthesized:", ""]
        for r in others:
            why = r.get("reason") or r.get("error", "")
            lines.append(f"- {r['name']} ({r['op']}), {r['status']}: {why.strip().splitlines()[0] if why else ''}")
    return "\n".join(lines) + "\n"


def write_report(rep, report_dir):
    """``synth_check.json`` and ``synth_check.md`` in ``report_dir``; returns their paths."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    js, md = report_dir / "synth_check.json", report_dir / "synth_check.md"
    js.write_text(json.dumps(rep, indent=2) + "\n")
    md.write_text(report_markdown(rep))
    return js, md


def step_synth_check(model, cfg):
    """Yosys synthesis of every RTL node for the board's FPGA family next to the estimates:
    report/synth_check.json and synth_check.md (see compiler/synth_check.py). A node Yosys fails on is recorded and
    the step goes on; ``synth_check_strict`` makes those failures fail the step at the end."""
    rep = synth_check(model, cfg.board, cfg.fpga_part, dsp=cfg.synth_check_dsp)
    js, _ = write_report(rep, Path(cfg.output_dir) / "report")
    t, c = rep["total"], rep["counts"]
    print(f"synth_check: {c['synthesized']}/{c['nodes']} nodes, LUT {t['estimate']['LUT']:,.0f} estimated vs "
          f"{t['yosys']['LUT']:,.0f} Yosys ({_pct(t['error']['LUT'])}), {c['skipped']} skipped, {c['failed']} "
          f"failed; {js}", flush=True)
    failed = [r["name"] for r in rep["nodes"] if r["status"] == "failed"]
    if failed and cfg.synth_check_strict:
        raise SynthCheckError(f"Yosys failed on {len(failed)} node(s): {', '.join(failed[:5])}"
                              f"{' ...' if len(failed) > 5 else ''} (errors in {js})")
    return model
