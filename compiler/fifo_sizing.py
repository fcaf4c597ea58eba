"""FIFO sizing by stitched RTL simulation of the partition (compiler/stitched_sim.py).

Simulate with deep FIFOs, then try depth 2 on every edge except the inputs of joins (which keep their high-water
marks), falling back to all high-water marks if that deadlocks, changes outputs or slows the frame interval; the
depths go to the consumer's ``inFIFODepths`` (FINN's attribute, used by FINN's InsertFIFO in the vendor build), and
the sized pipeline has been simulated, so it neither deadlocks nor slows down. A stream fed from external memory
(external weights, ``memory_sources``) has an independent source, so it is not a join.
"""

from pathlib import Path

import numpy as np
from qonnx.custom_op.registry import getCustomOp

from compiler.stitched_sim import StitchedSimError, memory_sources, run_stitched, stream_edges
from custom_ops.rtl.simulators import DEFAULT_RTLSIM_BACKEND


def _interval(frame_cycles):
    """Cycles between the last two frames' ends (the pipeline's steady-state frame interval)."""
    return frame_cycles[-1] - frame_cycles[-2] if len(frame_cycles) > 1 else (frame_cycles or [0])[0]


def size_fifos(model, frames, sim_dir, simulator=DEFAULT_RTLSIM_BACKEND):
    """FIFO sizing by simulation (module docstring). Returns (model, record) with record = {"depths", "edges",
    "frame_cycles_deep", "frame_cycles_sized", "outputs", ...}; the consumer nodes' ``inFIFODepths`` are set.

    1. deep FIFOs: every edge's high-water mark. A fast producer runs ahead of a slower consumer, so a high-water
       mark overstates what the edge needs (backpressure would stall the producer at no cost).
    2. shallow try: depth 2 everywhere except the inputs of joins (two-input nodes: the residual add's skip, the
       attention matrix stream) and the branches of forks, which must buffer what the other branch holds or the
       pipeline deadlocks; kept
       if it runs without deadlock, with the same outputs and a frame interval within 1 % of the deep one;
       otherwise the high-water marks are used.
    """
    deep = run_stitched(model, frames, Path(sim_dir) / "deep", simulator=simulator)
    marks = {e: max(2, int(m)) for e, m in deep["fifo_max"].items()}
    edges, _ = stream_edges(model)
    consumers_of = {}
    for e in edges:
        consumers_of.setdefault(e.tensor, []).append(e)
    weights = memory_sources(model)
    joins = {e.name for e in edges if e.consumer is not None and e.tensor not in weights
             and len([t for t in getCustomOp(e.consumer).stream_inputs() if t not in weights]) > 1}
    joins |= {e.name for es in consumers_of.values() if len(es) > 1 for e in es}  # and the branches of forks
    shallow = {e: (m if e in joins else 2) for e, m in marks.items()}
    try:
        trial = run_stitched(model, frames, Path(sim_dir) / "shallow", fifo_depths=shallow, simulator=simulator)
        ok = all(np.array_equal(a, b) for a, b in zip(deep["outputs"], trial["outputs"])) and \
            _interval(trial["frame_cycles"]) <= 1.01 * _interval(deep["frame_cycles"]) + 1
    except StitchedSimError:
        ok = False
    depths = shallow if ok else marks
    sized = trial if ok else run_stitched(model, frames, Path(sim_dir) / "sized", fifo_depths=depths,
                                          simulator=simulator)
    for a, b in zip(deep["outputs"], sized["outputs"]):
        if not np.array_equal(a, b):
            raise StitchedSimError("stitched rtlsim: outputs changed after FIFO sizing")
    for e in edges:
        if e.consumer is None:
            continue
        inst = getCustomOp(e.consumer)
        cur = list(inst.get_nodeattr("inFIFODepths"))
        n_streams = len(getCustomOp(e.consumer).stream_inputs())
        cur = (cur + [2] * n_streams)[:n_streams]
        cur[e.port] = depths[e.name]
        inst.set_nodeattr("inFIFODepths", cur)
    widths = {e.name: e.producer_width for e in edges}
    record = {"depths": depths, "high_water_marks": marks, "method": "shallow except joins" if ok else
              "high-water marks", "simulator": deep["simulator"], "edges": deep["edges"], "widths": widths,
              "memory_bits": int(sum(depths[k] * widths[k] for k in depths)),
              "memory_bits_high_water": int(sum(marks[k] * widths[k] for k in marks)),
              "frame_cycles_deep": deep["frame_cycles"], "frame_cycles_sized": sized["frame_cycles"],
              "outputs": sized["outputs"]}
    return model, record
