"""Stitched RTL simulation of a whole dataflow partition (Verilator or Icarus Verilog).

FINN stitches the IP blocks in Vivado and simulates the result with XSI; without Vivado, minifinn connects the
generated Verilog of every node itself: one testbench (``stitched_tb.v``, written here) instantiates every node's top
wrapper, a FIFO on every edge (``mf_stream_fifo``: reports its high-water mark), a fork where a tensor has several
consumers (``mf_stream_fork``, FINN's DuplicateStreams) and a bit-level width converter where producer and
consumer words differ (``mf_stream_dwc``, FINN's StreamingDataWidthConverter); all in
custom_ops/rtl/stream_infra.v. The testbench streams several frames back to back into the partition input and
records the output words, the cycle each frame's last word left, and every FIFO's maximum occupancy.

External weights (an op's ``memory_streams``, a MinifloatMVAU with ``mem_mode = "external"``): that in1 is fed in
``stitched_top`` by an ``mf_rom_stream`` (rom_stream.v, ``w_<tensor>.hex``) standing for FINN's weight IODMA in
"wrap" mode, the words over and over, through an edge FIFO; an independent source, so not a join for FIFO sizing.

FIFO sizing from these simulations: compiler/fifo_sizing.py.
"""

import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
from qonnx.custom_op.registry import getCustomOp

from compiler.errors import MinifinnError
from compiler.qonnx_formats import format_from_datatype
from custom_ops.codegen import codes_of, pack_words, unpack_words, write_hex
from custom_ops.rtl import verilator_build
from custom_ops.rtl.simulators import DEFAULT_RTLSIM_BACKEND, resolve_rtlsim_backend, watchdog_allowance
from custom_ops.rtl.stream_backend import RTLStreamBackend

INFRA, ROM_STREAM = (Path(__file__).resolve().parent.parent / "custom_ops" / "rtl" / f
                     for f in ("stream_infra.v", "rom_stream.v"))
WEIGHT_FIFO_DEPTH = 64  # storage of a weight edge's FIFO: its ROM source waits for nothing, depth buys nothing


class StitchedSimError(MinifinnError):
    """The partition cannot be simulated as a whole (a node without RTL, several inputs, a deadlock, ...)."""


def memory_sources(model):
    """{tensor: (words, width)} of the streams fed from external memory (the ops' ``memory_streams``)."""
    return {k: v for node in model.graph.node for k, v in getCustomOp(node).memory_streams(model).items()}


class _WideInt:
    """An accumulator stream wider than the formats of compiler.numerics (e.g. INT40): bits and sign only."""

    is_minifloat = False

    def __init__(self, dt):
        self.bits, self.signed = dt.bitwidth(), dt.signed()


def _tensor_format(model, name):
    dt = model.get_tensor_datatype(name)
    if dt.is_integer() and dt.bitwidth() > 8:
        return _WideInt(dt)
    return format_from_datatype(dt.name, name)


def stitchable(model):
    """(True, "") when every node has an Icarus-simulated RTL backend, else (False, the reason)."""
    if len(model.graph.input) != 1 or len(model.graph.output) != 1:
        return False, "the partition needs exactly one input and one output stream"
    bad = [n.name for n in model.graph.node if not isinstance(getCustomOp(n), RTLStreamBackend)]
    if bad:
        return False, (f"nodes without a minifinn RTL backend (cppsim only, or FINN ops): {', '.join(bad[:5])}; "
                       "stitched simulation needs every node in RTL (preferred_impl_style='rtl')")
    return True, ""


class _Edge:
    def __init__(self, index, tensor, producer_width, consumer, port, consumer_width):
        self.index, self.tensor = index, tensor
        self.producer_width, self.consumer, self.port, self.consumer_width = (producer_width, consumer, port,
                                                                              consumer_width)

    @property
    def name(self):
        return f"e{self.index}"


def stream_edges(model):
    """(edges, {tensor: word width}): the stream edges (tensor -> consumer stream port) in a stable order, plus the
    output tensor's edge (consumer None)."""
    edges = []
    out_name = model.graph.output[0].name
    in_name = model.graph.input[0].name
    widths = {}
    for node in model.graph.node:
        widths[node.output[0]] = getCustomOp(node).get_outstream_width()
    for node in model.graph.node:
        inst = getCustomOp(node)
        for port, tensor in enumerate(getCustomOp(node).stream_inputs()):
            cw = inst.get_instream_width(port)
            widths.setdefault(tensor, cw)  # the graph input takes its first consumer's width
            edges.append(_Edge(len(edges), tensor, widths[tensor], node, port, cw))
    edges.append(_Edge(len(edges), out_name, widths[out_name], None, 0, widths[out_name]))
    if in_name not in [e.tensor for e in edges]:
        raise StitchedSimError("the partition input feeds no node")
    return edges, widths


def _write_top(model, sim_dir, capacity):
    """``stitched_top.v``: the partition as one module with the ports of a node (``in0_V``, ``out0_V``), every
    edge's FIFO (``capacity[edge]`` words of storage) and two flat 32-bit-per-edge buses: ``fifo_limit`` (the depth
    each FIFO runs at, set by the testbench or harness at run time) and ``fifo_max`` (the high-water marks)."""
    edges, widths = stream_edges(model)
    in_name = model.graph.input[0].name
    n_e = len(edges)
    lines = ["// stitched dataflow partition, generated by minifinn (compiler/stitched_sim.py)",
             "module stitched_top (", "    input  wire ap_clk,", "    input  wire ap_rst_n,",
             f"    input  wire [{widths[in_name] - 1}:0] in0_V_TDATA,", "    input  wire in0_V_TVALID,",
             "    output wire in0_V_TREADY,", f"    output wire [{edges[-1].consumer_width - 1}:0] out0_V_TDATA,",
             "    output wire out0_V_TVALID,", "    input  wire out0_V_TREADY,",
             f"    input  wire [{32 * n_e - 1}:0] fifo_limit,", f"    output wire [{32 * n_e - 1}:0] fifo_max", ");",
             "    wire clk = ap_clk, rst_n = ap_rst_n;"]
    decl = lines.append
    for t, w in widths.items():
        safe = _safe(t)
        decl(f"    wire [{w - 1}:0] t_{safe}_data; wire t_{safe}_valid, t_{safe}_ready;")
    by_tensor = {}
    for e in edges:
        by_tensor.setdefault(e.tensor, []).append(e)
    for e in edges:
        decl(f"    wire [{e.producer_width - 1}:0] {e.name}_src_data; wire {e.name}_src_valid, {e.name}_src_ready;")
        decl(f"    wire [{e.producer_width - 1}:0] {e.name}_f_data; wire {e.name}_f_valid, {e.name}_f_ready;")
        decl(f"    wire [{e.consumer_width - 1}:0] {e.name}_data; wire {e.name}_valid, {e.name}_ready;")
    # producers -> (fork) -> edge sources
    for t, es in by_tensor.items():
        s, w = _safe(t), widths[t]
        if len(es) == 1:
            e = es[0]
            decl(f"    assign {e.name}_src_data = t_{s}_data; assign {e.name}_src_valid = t_{s}_valid; "
                 f"assign t_{s}_ready = {e.name}_src_ready;")
            continue
        n = len(es)
        decl(f"    wire [{n * w - 1}:0] fork_{s}_data; wire [{n - 1}:0] fork_{s}_valid, fork_{s}_ready;")
        decl(f"    mf_stream_fork #(.WIDTH({w}), .N({n})) fork_{s} (.clk(clk), .rst_n(rst_n), .in_data(t_{s}_data), "
             f".in_valid(t_{s}_valid), .in_ready(t_{s}_ready), .out_data(fork_{s}_data), "
             f".out_valid(fork_{s}_valid), .out_ready(fork_{s}_ready));")
        for k, e in enumerate(es):
            decl(f"    assign {e.name}_src_data = fork_{s}_data[{(k + 1) * w - 1}:{k * w}]; "
                 f"assign {e.name}_src_valid = fork_{s}_valid[{k}]; assign fork_{s}_ready[{k}] = {e.name}_src_ready;")
    # edge: FIFO, then width conversion
    for k, e in enumerate(edges):
        decl(f"    mf_stream_fifo #(.WIDTH({e.producer_width}), .DEPTH({capacity[e.name]})) {e.name}_fifo "
             f"(.clk(clk), .rst_n(rst_n), .limit(fifo_limit[{32 * k + 31}:{32 * k}]), "
             f".in_data({e.name}_src_data), .in_valid({e.name}_src_valid), .in_ready({e.name}_src_ready), "
             f".out_data({e.name}_f_data), .out_valid({e.name}_f_valid), .out_ready({e.name}_f_ready), "
             f".max_count(fifo_max[{32 * k + 31}:{32 * k}]));")
        if e.producer_width == e.consumer_width:
            decl(f"    assign {e.name}_data = {e.name}_f_data; assign {e.name}_valid = {e.name}_f_valid; "
                 f"assign {e.name}_f_ready = {e.name}_ready;")
        else:
            decl(f"    mf_stream_dwc #(.IW({e.producer_width}), .OW({e.consumer_width})) {e.name}_dwc (.clk(clk), "
                 f".rst_n(rst_n), .in_data({e.name}_f_data), .in_valid({e.name}_f_valid), "
                 f".in_ready({e.name}_f_ready), .out_data({e.name}_data), .out_valid({e.name}_valid), "
                 f".out_ready({e.name}_ready));")
    # nodes
    for node in model.graph.node:
        inst = getCustomOp(node)
        ports = [".ap_clk(clk)", ".ap_rst_n(rst_n)"]
        for e in edges:
            if e.consumer is not None and e.consumer.name == node.name:
                p = f"in{e.port}_V"
                ports += [f".{p}_TDATA({e.name}_data)", f".{p}_TVALID({e.name}_valid)", f".{p}_TREADY({e.name}_ready)"]
        s = _safe(node.output[0])
        ports += [f".out0_V_TDATA(t_{s}_data)", f".out0_V_TVALID(t_{s}_valid)", f".out0_V_TREADY(t_{s}_ready)"]
        decl(f"    {inst.get_verilog_top_module_name()} n_{_safe(node.name)} ({', '.join(ports)});")
    for tensor, (words, width) in memory_sources(model).items():  # external memory: FINN's weight IODMA
        s = _safe(tensor)
        write_hex(sim_dir / f"w_{s}.hex", words, width)
        decl(f"    mf_rom_stream #(.WIDTH({width}), .WORDS({len(words)}), .FILE(\"w_{s}.hex\")) wsrc_{s} (.clk(clk), "
             f".rst_n(rst_n), .out_data(t_{s}_data), .out_valid(t_{s}_valid), .out_ready(t_{s}_ready));")
    si, out = _safe(in_name), edges[-1].name
    decl(f"    assign t_{si}_data = in0_V_TDATA; assign t_{si}_valid = in0_V_TVALID; "
         f"assign in0_V_TREADY = t_{si}_ready;")
    decl(f"    assign out0_V_TDATA = {out}_data; assign out0_V_TVALID = {out}_valid; "
         f"assign {out}_ready = out0_V_TREADY;")
    decl("endmodule")
    (sim_dir / "stitched_top.v").write_text("\n".join(lines) + "\n")
    return edges


def _watchdog_add(model, n_frames):
    """The simulations' watchdog allowance beyond 200 cycles per stream word (``watchdog_allowance``): 200,000 cycles
    plus the stall factor times the expected cycles of ``n_frames`` frames: the first frame through every node, then
    one frame interval of the slowest node per further frame."""
    cycles = [getCustomOp(n).get_exp_cycles() for n in model.graph.node]
    return watchdog_allowance(200000, sum(cycles), max(cycles, default=0), n_frames)


def _write_icarus_tb(sim_dir, edges, depths, in_width, out_width, n_in, n_out, words_per_frame_out, gaps,
                     watchdog_add=200000):
    """``stitched_tb.v`` (Icarus): clock and reset, ``stitched_top`` at the FIFO depths ``depths``, the input words
    of ``in.hex`` with random valid gaps, random output backpressure (``gaps``), the output words, each frame's end
    cycle and the FIFOs' high-water marks to ``out.txt``; the Verilator harness (custom_ops/rtl/
    verilator_harness.cpp) does the same cycle for cycle."""
    limits = ", ".join(f"32'd{depths[e.name]}" for e in reversed(edges))
    maxes = "\n".join(f'            $fdisplay(fd, "fifo {e.name} %0d", fifo_max[{32 * k + 31}:{32 * k}]);'
                      for k, e in enumerate(edges))
    (sim_dir / "stitched_tb.v").write_text(f"""`timescale 1ns/1ps
module stitched_tb;
    parameter NIN = {n_in}, NOUT = {n_out}, FRAME_OUT = {words_per_frame_out}, GAPS = {int(bool(gaps))};
    parameter WATCHDOG_ADD = {watchdog_add};
    reg clk = 0, rst_n = 0;
    always #5 clk = ~clk;
    reg [{in_width - 1}:0] in_mem [0:NIN-1];
    reg [{in_width - 1}:0] idata; reg ivalid = 0;
    wire iready, ovalid;
    wire [{out_width - 1}:0] odata;
    wire [{32 * len(edges) - 1}:0] fifo_max;
    integer sent = 0, got = 0, cycles = 0, fd, seed = 7;
    reg oready = 0;
    stitched_top dut (.ap_clk(clk), .ap_rst_n(rst_n), .in0_V_TDATA(idata), .in0_V_TVALID(ivalid),
                      .in0_V_TREADY(iready), .out0_V_TDATA(odata), .out0_V_TVALID(ovalid), .out0_V_TREADY(oready),
                      .fifo_limit({{{limits}}}), .fifo_max(fifo_max));
    task report_fifos; begin
{maxes}
    end endtask
    initial begin
        $readmemh("in.hex", in_mem);
        fd = $fopen("out.txt", "w");
        repeat (3) @(posedge clk);
        rst_n = 1;
    end
    always @(posedge clk) if (rst_n) begin
        cycles <= cycles + 1;
        if (ovalid && oready) begin
            $fdisplay(fd, "%h", odata);
            got = got + 1;
            if (got % FRAME_OUT == 0) $fdisplay(fd, "frame %0d", cycles);
            if (got == NOUT) begin
                report_fifos;
                $fclose(fd);
                $finish;
            end
        end
        if (ivalid && iready) sent = sent + 1;
        if (!(ivalid && !iready)) begin
            ivalid <= (sent < NIN) && (!GAPS || ($random(seed) & 3) != 0);
            idata <= in_mem[sent];
        end
        oready <= !GAPS || ($random(seed) & 3) != 0;
        if (cycles > 200 * (NIN + NOUT) + WATCHDOG_ADD) begin
            $fdisplay(fd, "deadlock sent %0d got %0d", sent, got);
            report_fifos;
            $fclose(fd);
            $finish;
        end
    end
endmodule
""")


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _node_sources(model):
    """[(owner node index, file)]: every node's Verilog, each file name once (the cores and the MAC library are
    copied next to every node), the node's own top wrapper owned by it."""
    seen, files = set(), []
    for i, node in enumerate(model.graph.node):
        for f in getCustomOp(node).get_rtl_file_list(abspath=True):
            if Path(f).name not in seen:
                seen.add(Path(f).name)
                files.append((i, f))
    return files


def _infra_sources(model):
    """The stream plumbing, and the external weights' ROM source unless a node brings rom_stream.v already."""
    rom = memory_sources(model) and ROM_STREAM.name not in {Path(f).name for _, f in _node_sources(model)}
    return [INFRA, ROM_STREAM] if rom else [INFRA]


def _run_icarus(model, sim_dir, edges, depths, in_width, out_width, n_in, n_out, per_frame, gaps):
    if shutil.which("iverilog") is None:
        raise StitchedSimError("stitched rtlsim needs Icarus Verilog: apt-get install iverilog")
    _write_icarus_tb(sim_dir, edges, depths, in_width, out_width, n_in, n_out, per_frame, gaps,
                     _watchdog_add(model, n_out // per_frame))
    start = time.perf_counter()
    cmd = ["iverilog", "-g2005", "-s", "stitched_tb", "-o", "stitched.vvp"] + [f for _, f in _node_sources(model)]
    infra = [str(f) for f in _infra_sources(model)]
    run = subprocess.run(cmd + infra + ["stitched_top.v", "stitched_tb.v"], cwd=sim_dir, capture_output=True,
                         text=True)
    if run.returncode:
        raise StitchedSimError(f"stitched rtlsim: iverilog failed:\n{run.stderr[-3000:]}")
    compiled = time.perf_counter()
    subprocess.run(["vvp", "-n", "stitched.vvp"], cwd=sim_dir, capture_output=True, text=True)
    return compiled - start, time.perf_counter() - compiled


def _run_verilator(model, sim_dir, edges, depths, out_width, n_in, n_out, per_frame, gaps):
    """The partition's Verilated binary (cached: every node's memory-file paths become ``n<k>/<file>``, relative to
    the run directory, where ``n<k>`` links to node k's code directory) run on ``in.hex`` at the FIFO depths
    ``depths`` (``fifo_depths.txt``)."""
    sources = []
    for i, f in _node_sources(model):
        path = Path(f)
        sources.append((path.name, path.read_text().replace(f'"{path.parent.as_posix()}/', f'"n{i}/')))
    sources += [(f.name, f.read_text()) for f in _infra_sources(model)]
    sources.append(("stitched_top.v", (sim_dir / "stitched_top.v").read_text()))
    for i, node in enumerate(model.graph.node):
        link = sim_dir / f"n{i}"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(getCustomOp(node).get_nodeattr("code_gen_dir_ipgen")).resolve(), target_is_directory=True)
    (sim_dir / "fifo_depths.txt").write_text("".join(f"{depths[e.name]}\n" for e in edges))
    binary, compile_seconds = verilator_build.build(sources, "stitched_top", {"MF_N_IN": 1, "MF_FIFOS": 1},
                                                    label="stitched rtlsim")
    start = time.perf_counter()
    verilator_build.run_binary(binary, sim_dir, dict(
        nin0=n_in, in0="in.hex", nout=n_out, frame_out=per_frame, out_bits=out_width, gaps=int(bool(gaps)), seed=7,
        reset_cycles=3, watchdog_mul=200, watchdog_add=_watchdog_add(model, n_out // per_frame), stitched=1,
        fifo_depths="fifo_depths.txt",
        out="out.txt"), "stitched rtlsim")
    return compile_seconds, time.perf_counter() - start


def run_stitched(model, frames, sim_dir, fifo_depths=None, default_depth=None, gaps=False,
                 simulator=DEFAULT_RTLSIM_BACKEND):
    """Simulate the partition on ``frames`` (list of input tensors, one per frame, in the partition's input
    shape) with ``simulator`` ("verilator" | "icarus"). Returns {"outputs": [per-frame output arrays],
    "frame_cycles": [...], "fifo_max": {edge: n}, "edges": {edge: description}, "depths": {edge: depth},
    "simulator": the one that ran, "compile_seconds", "run_seconds"}."""
    ok, why = stitchable(model)
    if not ok:
        raise StitchedSimError(f"stitched rtlsim: {why}")
    simulator = resolve_rtlsim_backend(simulator)
    sim_dir = Path(sim_dir).resolve()
    sim_dir.mkdir(parents=True, exist_ok=True)
    in_name, out_name = model.graph.input[0].name, model.graph.output[0].name
    edges, widths = stream_edges(model)
    fi, fo = _tensor_format(model, in_name), _tensor_format(model, out_name)
    in_lanes, out_lanes = widths[in_name] // fi.bits, widths[out_name] // fo.bits
    words = []
    for x in frames:
        words += pack_words(codes_of(np.asarray(x, dtype=np.float32).reshape(-1, in_lanes), fi), fi.bits)
    out_elems = int(np.prod(model.get_tensor_shape(out_name)))
    per_frame = out_elems // out_lanes
    weights = memory_sources(model)
    deep = {e.name: WEIGHT_FIFO_DEPTH if e.tensor in weights else max(64, 2 * _frame_words(model, e) + 8)
            for e in edges}  # a frame of the tensor, at least 64
    if default_depth is None:  # deep enough never to block
        default_depth = deep
    elif isinstance(default_depth, int):
        default_depth = {e.name: default_depth for e in edges}
    depths = dict(default_depth)
    depths.update(fifo_depths or {})
    # storage independent of the depths a run uses (they are set at run time): one compiled design for them all
    capacity = {e.name: max(deep[e.name], depths[e.name]) for e in edges}
    write_hex(sim_dir / "in.hex", words, widths[in_name])
    (sim_dir / "out.txt").unlink(missing_ok=True)
    _write_top(model, sim_dir, capacity)
    n_out = per_frame * len(frames)
    if simulator == "icarus":
        compile_s, run_s = _run_icarus(model, sim_dir, edges, depths, widths[in_name], widths[out_name], len(words),
                                       n_out, per_frame, gaps)
    else:
        compile_s, run_s = _run_verilator(model, sim_dir, edges, depths, widths[out_name], len(words), n_out,
                                          per_frame, gaps)
    text = (sim_dir / "out.txt").read_text().split("\n") if (sim_dir / "out.txt").is_file() else []
    data = [int(ln, 16) for ln in text if ln and re.fullmatch(r"[0-9a-fA-F]+", ln)]
    frame_cycles = [int(ln.split()[1]) for ln in text if ln.startswith("frame")]
    fifo_max = {ln.split()[1]: int(ln.split()[2]) for ln in text if ln.startswith("fifo")}
    if any(ln.startswith("deadlock") for ln in text) or len(data) != n_out:
        stuck = [ln for ln in text if ln.startswith("deadlock")]
        full = [e.name for e in edges if fifo_max.get(e.name, 0) >= depths[e.name]]
        raise StitchedSimError(
            f"stitched rtlsim: {len(data)} of {n_out} output words ({' '.join(stuck)}); "
            f"full FIFOs: {', '.join(full) or 'none'} — deepen them or check the node that stalls")
    if fo.bits > 8 and not fo.is_minifloat:
        vals = unpack_words(data, fo.bits, out_lanes, signed=fo.signed)
    else:
        vals = fo.decode(unpack_words(data, fo.bits, out_lanes).astype(np.int64))
    shape = model.get_tensor_shape(out_name)
    outputs = [v.reshape(shape) for v in np.split(np.asarray(vals), len(frames))]
    describe = {e.name: f"{e.tensor} -> {e.consumer.name + '.in' + str(e.port) if e.consumer else 'output'}"
                for e in edges}
    return {"outputs": outputs, "frame_cycles": frame_cycles, "fifo_max": fifo_max, "edges": describe,
            "depths": depths, "simulator": simulator, "compile_seconds": compile_s, "run_seconds": run_s}


def _frame_words(model, edge):
    shape = model.get_tensor_shape(edge.tensor)
    fmt = _tensor_format(model, edge.tensor)
    lanes = max(1, edge.producer_width // fmt.bits)
    return int(np.prod(shape)) // lanes
