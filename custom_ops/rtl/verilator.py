"""VerilatorSimulator: rtlsim of one minifinn RTL node with Verilator (the node's Verilog + a C++ AXI-stream harness).

The same interface and behaviour as ``IcarusSimulator`` (custom_ops/rtl/icarus.py): ``prepare`` readies the
simulation, ``run`` streams hex words through the node with random valid gaps on every input and random
backpressure on the output (unless ``gaps`` is false) and returns the output words and the cycle count. The harness
(``verilator_harness.cpp``) reproduces the Icarus testbench cycle for cycle, including its $random sequence, so
outputs and cycle counts are the same as Icarus's.

A node's binary is shared by every node of the same configuration: the top wrapper is renamed ``mf_node_top`` and
its memory-file paths (``$readmemh`` of weights, thresholds, tables) are made relative to the node's code directory,
where the binary runs, so the compiled design depends on the parameters only, not on the node's name, directory or
memory contents (custom_ops/rtl/verilator_build.py: the cache). ``prepare`` starts the compile in the background, so
a graph's nodes compile in parallel while the next ones are prepared; ``run`` waits for it.
"""

import re
from pathlib import Path

from compiler.errors import MinifinnError
from custom_ops.codegen import write_hex
from custom_ops.rtl.icarus import read_node_output
from custom_ops.rtl.verilator_build import available, compile_async, run_binary

NODE_TOP = "mf_node_top"


def node_design(top, rtl_files, n_input_streams):
    """(sources, top, defines) of a node's simulation: the wrapper ``top`` renamed to ``NODE_TOP`` and every
    quoted path into a source's own directory made relative."""
    pattern = re.compile(rf"\b{re.escape(top)}\b")
    sources = []
    for f in rtl_files:
        path = Path(f)
        text = path.read_text().replace(f'"{path.parent.as_posix()}/', '"')
        sources.append((f"{NODE_TOP}.v" if path.stem == top else path.name, pattern.sub(NODE_TOP, text)))
    return sources, NODE_TOP, {"MF_N_IN": int(n_input_streams)}


class VerilatorSimulator:
    name = "verilator"

    def prepare(self, sim_dir, top, rtl_files, n_input_streams):
        """Start compiling (or find in the cache) the node's binary."""
        if not available():
            raise MinifinnError("rtlsim with Verilator needs verilator and g++ (apt-get install verilator g++), "
                                "or rtlsim_backend 'icarus'")
        compile_async(*node_design(top, rtl_files, n_input_streams), label=top)

    def run(self, sim_dir, top, rtl_files, streams, out_width, n_out, gaps, label, watchdog_add=100000):
        """Simulate: ``streams`` = [(words, width)] for in0 (and in1); returns (output words, cycles). ``label``
        names the node in errors; the watchdog ends the run after 100 cycles per stream word plus ``watchdog_add``."""
        binary, _ = compile_async(*node_design(top, rtl_files, len(streams)), label=label).result()
        sim_dir = Path(sim_dir).resolve()
        args = {}
        for k, ((words, width), hex_name) in enumerate(zip(streams, ("in.hex", "in1.hex"))):
            write_hex(sim_dir / hex_name, words, width)
            args.update({f"nin{k}": len(words), f"in{k}": sim_dir / hex_name})
        out = sim_dir / "out.txt"
        out.unlink(missing_ok=True)
        args.update(nout=n_out, out_bits=out_width, gaps=int(bool(gaps)), seed=1, reset_cycles=2,
                    watchdog_mul=100, watchdog_add=int(watchdog_add), out=out)
        code_dir = next(Path(f).parent for f in rtl_files if Path(f).stem == top)  # relative memory paths
        stdout = run_binary(binary, code_dir, args, label)
        return read_node_output(out, n_out, label, stdout)
