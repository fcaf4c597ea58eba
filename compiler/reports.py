"""Estimate reports of a dataflow graph: FINN's JSON files plus a human summary and a plot.

``write_estimate_reports(model, output_dir, board, clk_ns)`` writes to ``output_dir/report/``:

* ``estimate_layer_resources.json`` -- finn's ``res_estimation`` (``{node: {"LUT", "FF", "BRAM_18K", "URAM",
  "DSP", ...}}``, each node's own ``node_res_estimation``) plus ``"total"`` (finn's ``aggregate_dict_keys``);
* ``estimate_layer_config_alternatives.json`` -- finn's ``res_estimation_complete`` (every ``ram_style`` / ``resType``
  variant of each node);
* ``estimate_layer_cycles.json`` -- finn's ``exp_cycles_per_layer`` (``{node: get_exp_cycles()}``);
* ``estimate_network_performance.json`` -- finn's ``dataflow_performance`` after ``AnnotateCycles``
  (``critical_path_cycles``, ``max_cycles``, ``max_cycles_node_name``) plus ``estimated_throughput_fps =
  1e9 / clk_ns / max_cycles`` and ``estimated_latency_ns = critical_path_cycles * clk_ns``, exactly FINN's
  ``step_generate_estimate_reports``; with external weights (passes/external_weights.py) also ``external_weights``
  (``memory_bound``: bits and bytes per frame, bandwidth, memory cycles per frame, per-node shares), the FPS is that
  of ``max(max_cycles, memory cycles)`` and ``bottleneck`` names the memory when it is the bound (else the slowest
  node);
* ``op_and_param_counts.json`` -- finn's ``op_and_param_counts`` (each op's ``get_op_and_param_counts``, e.g.
  ``op_mac_e3m2_e3m2``, ``param_weight_e3m2``, plus ``"total"``);
* ``summary.md`` -- per layer: node, op, input/weight/output formats, PE, SIMD, cycles, LUT/FF/BRAM_18K/URAM/DSP and
  the layer's largest share of the board; totals, share of the board per resource, the utilization limit, whether
  the design fits, FPS/latency, and the folding record of ``passes.resource_folding`` when the model carries one;
* ``resources.png`` -- (matplotlib, Agg) share of the board per layer and resource, and cycles per layer (the
  pipeline balance: the tallest bar is the bottleneck that sets the FPS).

All numbers come from finn's analyses over the ops' own estimates; nothing is re-derived here. The graph must be a
dataflow graph of specialized hardware nodes (``_hls`` / ``_rtl``, after ``SpecializeLayers``); unspecialized
hardware nodes are refused with ``ReportError`` (finn's analyses would silently skip them). Other nodes (none in a
dataflow partition) are listed in the summary as not estimated.
"""

import json
from functools import partial
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from qonnx.custom_op.registry import getCustomOp

import custom_ops  # noqa: F401  (registers minifinn's ops into finn's registries)
from compiler.boards import get_board
from compiler.errors import MinifinnError
from compiler.finn_env import ensure_finn_offline
from compiler.qonnx_formats import format_from_datatype
from custom_ops.capabilities import HWOpCapabilities
from finn.analysis.fpgadataflow.dataflow_performance import dataflow_performance
from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer
from finn.analysis.fpgadataflow.op_and_param_counts import aggregate_dict_keys, op_and_param_counts
from finn.analysis.fpgadataflow.res_estimation import res_estimation, res_estimation_complete
from finn.transformation.fpgadataflow.annotate_cycles import AnnotateCycles
from finn.util.fpgadataflow import is_hls_node, is_rtl_node
from passes.external_weights import memory_bound
from passes.resource_folding import folding_record

RESOURCES = ("LUT", "FF", "BRAM_18K", "URAM", "DSP")
REPORT_FILES = (
    "estimate_layer_resources.json",
    "estimate_layer_config_alternatives.json",
    "estimate_layer_cycles.json",
    "estimate_network_performance.json",
    "op_and_param_counts.json",
    "summary.md",
    "resources.png",
)


class ReportError(MinifinnError):
    """The model cannot be reported on (no hardware nodes, unspecialized nodes)."""


def _board(board):
    return get_board(board) if isinstance(board, str) else board


def _check_model(model):
    generic = [n.name or n.op_type for n in model.graph.node if n.domain == "finn.custom_op.fpgadataflow"]
    if generic:
        raise ReportError(
            f"hardware node(s) {generic} are not specialized to an _hls/_rtl variant, so FINN's estimate analyses "
            "would skip them; run finn's SpecializeLayers (the build's step_specialize_layers) first")
    hw = [n for n in model.graph.node if is_hls_node(n) or is_rtl_node(n)]
    if not hw:
        raise ReportError("the model has no _hls/_rtl hardware nodes to estimate; pass the dataflow partition model")
    names = [n.name for n in hw]
    if len(set(names)) != len(names) or not all(names):
        raise ReportError("hardware nodes need unique names; run qonnx GiveUniqueNodeNames first")


def estimate_reports(model, clk_ns=10.0, fpgapart=None, memory_GBps=None, memory=""):
    """Compute FINN's estimate reports; returns ``(model with cycles_estimate annotated, {report name: data})``
    with report names ``estimate_layer_resources``, ``estimate_layer_config_alternatives``,
    ``estimate_layer_cycles``, ``estimate_network_performance``, ``op_and_param_counts``. ``memory_GBps`` /
    ``memory``: the board's external memory, for nodes with external weights."""
    ensure_finn_offline()
    if not clk_ns or clk_ns <= 0:
        raise ReportError(f"clk_ns must be > 0, got {clk_ns}")
    _check_model(model)
    data = {"op_and_param_counts": model.analysis(op_and_param_counts),
            "estimate_layer_cycles": model.analysis(exp_cycles_per_layer)}
    res = model.analysis(partial(res_estimation, fpgapart=fpgapart))
    res["total"] = aggregate_dict_keys(res)
    data["estimate_layer_resources"] = res
    data["estimate_layer_config_alternatives"] = model.analysis(partial(res_estimation_complete, fpgapart=fpgapart))
    model = model.transform(AnnotateCycles())
    perf = dict(model.analysis(dataflow_performance))
    mem = memory_bound(model, memory_GBps, clk_ns, memory)
    mem_cycles = mem["cycles_per_frame"] if mem else 0
    perf["estimated_throughput_fps"] = (10**9) / clk_ns / max(perf["max_cycles"], mem_cycles)
    perf["estimated_latency_ns"] = perf["critical_path_cycles"] * clk_ns
    if mem:
        perf["external_weights"] = mem
        perf["bottleneck"] = mem["describe"] if mem_cycles >= perf["max_cycles"] else perf["max_cycles_node_name"]
    data["estimate_network_performance"] = perf
    return model, data


def _fmt_name(dtype):
    """Short format name (e3m2, int4) of a qonnx DataType, else its qonnx name."""
    name = dtype.name if hasattr(dtype, "name") else str(dtype)
    try:
        return format_from_datatype(name).name
    except MinifinnError:
        return name


def layer_rows(model, data, board):
    """One dict per estimated layer (graph order): name, op, formats, PE, SIMD, cycles, resources, share, and the
    op's requantizer style (``custom_ops.capabilities``; "—" for FINN's ops)."""
    res, cycles = data["estimate_layer_resources"], data["estimate_layer_cycles"]
    rows = []
    for node in model.graph.node:
        if node.name not in res:
            continue
        inst = getCustomOp(node)
        attrs = inst.get_nodeattr_types()

        def attr(name):
            return inst.get_nodeattr(name) if name in attrs else None

        weights = "—"
        if "MW" in attrs and "weightDataType" in attrs:
            weights = _fmt_name(inst.get_nodeattr("weightDataType"))
            if isinstance(inst, HWOpCapabilities) and inst.external_weight_bits():
                weights += " (off chip)"
        r = {k: float(res[node.name].get(k, 0) or 0) for k in RESOURCES}
        share = board.share(r)
        top = max(share, key=share.get)
        rows.append({
            "name": node.name, "op": node.op_type,
            "input": _fmt_name(inst.get_input_datatype(0)), "weights": weights,
            "output": _fmt_name(inst.get_output_datatype(0)),
            "PE": attr("PE"), "SIMD": attr("SIMD"), "cycles": int(cycles[node.name]),
            "resources": r, "share": share, "top_share": (top, share[top]),
            "requantizer": inst.requantizer() if hasattr(inst, "requantizer") else "—",
        })
    return rows


def _n(v):
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"


def summary_markdown(model, data, board, clk_ns, utilization=None, title=None):
    """The human summary (markdown). ``utilization``: the folding's limit (default: from the model's folding
    record, else 0.8)."""
    board = _board(board)
    record = folding_record(model)
    if utilization is None:
        utilization = record["utilization_limit"] if record else 0.8
    rows = layer_rows(model, data, board)
    perf, total = data["estimate_network_performance"], data["estimate_layer_resources"]["total"]
    lines = [f"# {title or 'minifinn estimates'} — {board.name} ({board.part}), {clk_ns:g} ns clock "
             f"({1000 / clk_ns:g} MHz)", ""]
    if record:
        target = (f"target {record['target_fps']:,.0f} FPS" if record["target_fps"] is not None
                  else "no target: fastest folding that fits")
        lines += [f"Folding: `SetFoldingResourceAware`, {target}, utilization limit {utilization:.0%} of the "
                  f"board.", ""]
    lines += ["| layer | op | input | weights | output | PE | SIMD | cycles | LUT | FF | BRAM_18K | URAM | DSP | "
              "board share | requantizer |", "|" + "---|" * 15]
    for r in rows:
        res = r["resources"]
        top, share = r["top_share"]
        lines.append(
            f"| {r['name']} | {r['op']} | {r['input']} | {r['weights']} | {r['output']} | "
            f"{r['PE'] if r['PE'] is not None else '—'} | {r['SIMD'] if r['SIMD'] is not None else '—'} | "
            f"{r['cycles']:,} | " + " | ".join(_n(res[k]) for k in RESOURCES) + f" | {100 * share:.2f} % {top} | "
            f"{r['requantizer']} |")
    share_total = board.share({k: float(total.get(k, 0)) for k in RESOURCES})
    top = max(share_total, key=share_total.get)
    lines.append(f"| **total** | | | | | | | max {perf['max_cycles']:,} | "
                 + " | ".join(_n(float(total.get(k, 0))) for k in RESOURCES)
                 + f" | {100 * share_total[top]:.2f} % {top} | |")
    fits_board = all(float(total.get(k, 0)) <= board.resources.get(k, 0) for k in RESOURCES)
    fits_limit = all(float(total.get(k, 0)) <= utilization * board.resources.get(k, 0) for k in RESOURCES)
    lines += ["", "| resource | estimated | board | share | limit |", "|---|---|---|---|---|"]
    for k in RESOURCES:
        used, have = float(total.get(k, 0)), board.resources.get(k, 0)
        lines.append(f"| {k} | {_n(used)} | {have:,} | {100 * share_total[k]:.2f} % | "
                     f"{'ok' if used <= utilization * have else 'OVER'} ({utilization:.0%}: "
                     f"{_n(utilization * have)}) |")
    ops = data["op_and_param_counts"].get("total", {})
    macs = sum(v for k, v in ops.items() if k.startswith("op_mac"))
    params = sum(v for k, v in ops.items() if k.startswith("param_weight"))
    mem = perf.get("external_weights")
    bound = (f"bound by the {mem['describe']}: {mem['cycles_per_frame']:,} cycles per frame; "
             if mem and mem["cycles_per_frame"] >= perf["max_cycles"] else "")
    lines += [
        "",
        f"- estimated throughput: **{perf['estimated_throughput_fps']:,.1f} FPS** ({bound}slowest layer "
        f"{perf['max_cycles_node_name']}: {perf['max_cycles']:,} cycles per frame)",
        f"- estimated latency: {perf['estimated_latency_ns'] / 1000:,.2f} us (critical path "
        f"{perf['critical_path_cycles']:,} cycles, FINN's pessimistic sum along the path)",
        f"- MACs per frame: {macs:,.0f}; weight parameters: {params:,.0f}",
        f"- fits {board.name}: **{'yes' if fits_board else 'NO'}**; within the {utilization:.0%} utilization "
        f"limit: {'yes' if fits_limit else 'no'}",
    ]
    if mem:
        lines.append(f"- weights off chip: {len(mem['nodes'])} layer(s) stream {mem['bytes_per_frame'] / 1e6:,.2f} MB "
                     f"per frame from external memory ({mem['bandwidth_GBps']:g} GB/s peak"
                     f"{', ' + mem['memory'] if mem['memory'] else ''}: {mem['bits_per_cycle']:,.0f} bits per cycle, "
                     f"{mem['cycles_per_frame']:,} cycles per frame, at most {mem['fps']:,.1f} FPS); no weight memory "
                     "on chip for them")
    if record and record.get("not_folded"):
        lines.append(f"- kept the folding they had (not folded by the pass): {', '.join(record['not_folded'])}")
    skipped = [f"{n.name or '?'} ({n.op_type})" for n in model.graph.node
               if n.name not in data["estimate_layer_resources"]]
    if skipped:
        lines.append(f"- not hardware nodes, not in the estimates: {', '.join(skipped)}")
    lines += ["", "Estimates: each op's own `node_res_estimation` / `get_exp_cycles` through FINN's analyses "
              "(`res_estimation`, `exp_cycles_per_layer`, `dataflow_performance`); the `MinifloatMVAU` LUT model "
              "is fitted to Yosys synthesis (README). FIFOs, width converters and the shell are not included.", ""]
    return "\n".join(lines)


def plot_resources(model, data, board, path, clk_ns=10.0):
    """``resources.png``: share of the board per layer and resource (grouped bars) and cycles per layer (bars, the
    bottleneck highlighted, with the target cycles of the folding record when there is one)."""
    board = _board(board)
    rows = layer_rows(model, data, board)
    names = [r["name"] for r in rows]
    x = np.arange(len(rows))
    fig = Figure(figsize=(max(6.0, 1.0 + 0.9 * len(rows)), 7.5))  # no pyplot: no backend, no global state
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    keys = [k for k in RESOURCES if board.resources.get(k, 0) > 0]
    width = 0.8 / max(len(keys), 1)
    for i, k in enumerate(keys):
        ax1.bar(x + (i - (len(keys) - 1) / 2) * width, [100 * r["share"][k] for r in rows], width, label=k)
    ax1.set_ylabel(f"% of {board.name}")
    ax1.set_title("estimated resources per layer (share of the board)")
    ax1.legend(fontsize=8, ncol=len(keys))
    cycles = [r["cycles"] for r in rows]
    worst = max(cycles)
    ax2.bar(x, cycles, color=["tab:red" if c == worst else "tab:blue" for c in cycles])
    record = folding_record(model)
    if record and record.get("target_cycles"):
        ax2.axhline(record["target_cycles"], color="k", ls="--", lw=1,
                    label=f"target {record['target_fps']:,.0f} FPS")
        ax2.legend(fontsize=8)
    perf = data["estimate_network_performance"]
    fps, mem = perf["estimated_throughput_fps"], perf.get("external_weights")
    ax2.set_ylabel("cycles per frame")
    if mem and mem["cycles_per_frame"] >= perf["max_cycles"]:
        ax2.axhline(mem["cycles_per_frame"], color="tab:purple", ls=":", lw=1.5, label=mem["describe"])
        ax2.legend(fontsize=8)
        ax2.set_title(f"the external memory sets {fps:,.0f} FPS at {clk_ns:g} ns")
    else:
        ax2.set_title(f"pipeline balance: the slowest layer sets {fps:,.0f} FPS at {clk_ns:g} ns")
    ax2.set_xticks(x)
    ax2.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)


def write_estimate_reports(model, output_dir, board, clk_ns=10.0, fpgapart=None, utilization=None, plot=True,
                           title=None):
    """Write the estimate reports (module docstring) to ``output_dir/report/``.

    ``board``: a ``compiler.boards.Board`` or board name; ``fpgapart`` defaults to the board's part. Returns
    ``(model with cycles_estimate annotated, {report file name: path})``. Raises ``ReportError`` for a model
    without specialized hardware nodes.
    """
    board = _board(board)
    model, data = estimate_reports(model, clk_ns, fpgapart or board.part, board.memory_GBps, board.memory)
    report = Path(output_dir) / "report"
    report.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, content in data.items():
        path = report / f"{name}.json"
        path.write_text(json.dumps(content, indent=2, default=float) + "\n")
        paths[path.name] = path
    path = report / "summary.md"
    path.write_text(summary_markdown(model, data, board, clk_ns, utilization, title))
    paths[path.name] = path
    if plot:
        paths["resources.png"] = plot_resources(model, data, board, report / "resources.png", clk_ns)
    return model, paths


def estimate_reports_step(model, cfg):
    """Build step ``model, cfg -> model`` (name it ``"compiler.reports.estimate_reports_step"`` in a config's
    ``steps``): ``write_estimate_reports`` to ``cfg.output_dir/report/`` for ``cfg.board`` at
    ``cfg.synth_clk_period_ns``, part ``cfg.fpga_part`` or the board's."""
    board = _board(cfg.board)
    model, _ = write_estimate_reports(model, cfg.output_dir, board, cfg.synth_clk_period_ns,
                                      cfg.fpga_part or board.part)
    return model
