"""IcarusSimulator: rtlsim of one minifinn RTL node with Icarus Verilog (no vendor tools).

``prepare`` writes the AXI-stream testbench (``tb_axis.v.tpl``, or ``tb_axis2.v.tpl`` for two input streams) into
the node's simulation directory; ``run`` streams hex words through it (random valid gaps on every input and random
backpressure on the output unless ``gaps`` is false) and returns the output words and the cycle count. The compiled
simulation is reused while the design and the stream sizes stay the same (many images through one node), until the
next ``prepare``.
"""

import shutil
import subprocess
from pathlib import Path

from compiler.errors import MinifinnError
from custom_ops.codegen import render_template, write_hex

HERE = Path(__file__).resolve().parent


def read_node_output(path, n_out, label, log=""):
    """The output words and the cycle count a node testbench (or the Verilator harness) wrote to ``path``: one hex
    word per line, then ``cycles <n>``."""
    path = Path(path)
    lines = path.read_text().split("\n") if path.is_file() else []
    data = [int(ln, 16) for ln in lines if ln and not ln.startswith("cycles")]
    cycles = [int(ln.split()[1]) for ln in lines if ln.startswith("cycles")]
    if len(data) != n_out:
        raise MinifinnError(f"{label}: rtlsim produced {len(data)} of {n_out} outputs ({log[-500:]})")
    return data, (cycles[0] if cycles else 0)


class IcarusSimulator:
    name = "icarus"

    def prepare(self, sim_dir, top, rtl_files, n_input_streams):
        """Write the testbench of the top module ``top`` into ``sim_dir``."""
        if shutil.which("iverilog") is None:
            raise MinifinnError("rtlsim needs Icarus Verilog: apt-get install iverilog")
        tb = "tb_axis2.v.tpl" if n_input_streams == 2 else "tb_axis.v.tpl"
        (sim_dir / "tb.v").write_text(render_template(HERE / tb, {"$TOP$": top}))
        (sim_dir / "sim.cmd").unlink(missing_ok=True)  # a fresh preparation recompiles on the next run

    def run(self, sim_dir, top, rtl_files, streams, out_width, n_out, gaps, label, watchdog_add=100000):
        """Simulate: ``streams`` = [(words, width)] for in0 (and in1); returns (output words, cycles). ``label``
        names the node in errors; the watchdog ends the run after 100 cycles per stream word plus ``watchdog_add``."""
        params = dict(OW=out_width, NOUT=n_out, GAPS=int(bool(gaps)), WATCHDOG_ADD=int(watchdog_add))
        for (words, width), (hex_name, suffix) in zip(streams, (("in.hex", ""), ("in1.hex", "1"))):
            write_hex(sim_dir / hex_name, words, width)
            params.update({f"IW{suffix}": width, f"NIN{suffix}": len(words)})
        cmd = ["iverilog", "-g2005", "-s", "tb", "-o", "sim.vvp"] + [f"-Ptb.{k}={v}" for k, v in params.items()]
        cmd += [str(f) for f in rtl_files] + ["tb.v"]
        stamp = sim_dir / "sim.cmd"
        if not ((sim_dir / "sim.vvp").is_file() and stamp.is_file() and stamp.read_text() == repr(cmd)):
            run = subprocess.run(cmd, cwd=sim_dir, capture_output=True, text=True)
            if run.returncode:
                raise MinifinnError(f"{label}: iverilog failed:\n{run.stderr[-2000:]}")
            stamp.write_text(repr(cmd))  # the same design and stream sizes: later runs reuse sim.vvp
        (sim_dir / "out.txt").unlink(missing_ok=True)
        run = subprocess.run(["vvp", "-n", "sim.vvp"], cwd=sim_dir, capture_output=True, text=True)
        if run.returncode:
            raise MinifinnError(f"{label}: vvp failed ({run.stdout[-500:]})")
        return read_node_output(sim_dir / "out.txt", n_out, label, run.stdout)
