"""Shared plumbing of minifinn's Verilog backends: file lists, Vivado IPI tcl, and rtlsim with Icarus Verilog.

A backend sets ``CORE`` (the core module, also the file ``<CORE>.v`` next to this module) and ``USES_MAC_LIBRARY``
(whether ``custom_ops/mac/mf_mac.v`` is part of the design); its top wrapper is ``<node name>_<CORE>``. rtlsim:
``prepare_rtlsim`` writes the AXI-stream testbench (``tb_axis.v``, or ``tb_axis2.v`` for two input streams) into
``code_gen_dir_ipgen/rtlsim``; ``run_icarus`` streams hex words through it (random valid gaps and backpressure
unless ``GAPS=0``) and returns the output words and the cycle count. The compiled simulation is reused while the
design and the stream sizes stay the same (many images through one node), until the next ``prepare_rtlsim``.
"""

import shutil
import subprocess
from pathlib import Path

from compiler.errors import MinifinnError
from custom_ops.codegen import write_hex
from custom_ops.mac import verilog_sources

HERE = Path(__file__).resolve().parent


class IcarusBackend:
    """Mixin for ``RTLBackend`` subclasses (see module docstring)."""

    CORE = ""
    USES_MAC_LIBRARY = True

    def _top_name(self):
        return f"{self.onnx_node.name}_{self.CORE}"

    def get_verilog_top_module_name(self):
        return self._top_name()

    def n_input_streams(self):
        return 1

    def get_rtl_file_list(self, abspath=False):
        mac = [Path(p).name for p in verilog_sources()] if self.USES_MAC_LIBRARY else []
        names = mac + [f"{self.CORE}.v", f"{self._top_name()}.v"]
        if not abspath:
            return names
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        return [str(code_dir / n) for n in names]

    def code_generation_ipi(self):
        cmd = [f"add_files -copy_to [get_property DIRECTORY [current_project]]/{Path(f).name} -norecurse {f}"
               for f in self.get_rtl_file_list(abspath=True)]
        cmd.append(f"create_bd_cell -type module -reference {self._top_name()} {self.onnx_node.name}")
        return cmd

    def write_top(self, code_dir, wrapper, params, widths):
        """Render ``wrapper`` (a template next to this module) with the core's parameter list and stream widths
        ({"$IW$": .., "$OW$": ..}), copy the core and the MAC library into ``code_dir`` and set FINN's IP paths."""
        text = (HERE / wrapper).read_text().replace("$CORE$", self.CORE).replace("$TOP$", self._top_name())
        text = text.replace("$PARAMS$", ",\n        ".join(params))
        for key, value in widths.items():
            text = text.replace(key, str(value))
        (code_dir / f"{self._top_name()}.v").write_text(text)
        sources = (verilog_sources() if self.USES_MAC_LIBRARY else []) + [HERE / f"{self.CORE}.v"]
        for src in sources:
            shutil.copy(src, code_dir / Path(src).name)
        self.set_nodeattr("ipgen_path", str(code_dir))
        self.set_nodeattr("ip_path", str(code_dir))

    def prepare_rtlsim(self, behav=False):
        if shutil.which("iverilog") is None:
            raise MinifinnError("rtlsim needs Icarus Verilog: apt-get install iverilog")
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        if not (code_dir / f"{self._top_name()}.v").is_file():
            raise MinifinnError(f"{self.onnx_node.name}: no generated Verilog in {code_dir}; run PrepareIP first")
        sim_dir = code_dir / "rtlsim"
        sim_dir.mkdir(exist_ok=True)
        tb_file = "tb_axis2.v" if self.n_input_streams() == 2 else "tb_axis.v"
        (sim_dir / "tb.v").write_text((HERE / tb_file).read_text().replace("$TOP$", self._top_name()))
        (sim_dir / "sim.cmd").unlink(missing_ok=True)  # a fresh preparation recompiles on the next run
        self.set_nodeattr("rtlsim_dir", str(sim_dir))
        self.set_nodeattr("rtlsim_so", str(sim_dir))  # FINN checks this attribute; here: the Icarus run dir

    def run_icarus(self, streams, n_out, gaps=True):
        """Run the testbench: ``streams`` = [(words, width)] for in0 (and in1); returns (output words, cycles)."""
        sim_dir = Path(self.get_nodeattr("rtlsim_dir") or "")
        if not sim_dir.is_dir():
            raise MinifinnError(f"{self.onnx_node.name}: call PrepareRTLSim (prepare_rtlsim) before rtlsim")
        params = dict(OW=self.get_outstream_width(), NOUT=n_out, GAPS=int(bool(gaps)))
        for (words, width), (hex_name, suffix) in zip(streams, (("in.hex", ""), ("in1.hex", "1"))):
            write_hex(sim_dir / hex_name, words, width)
            params.update({f"IW{suffix}": width, f"NIN{suffix}": len(words)})
        cmd = ["iverilog", "-g2005", "-s", "tb", "-o", "sim.vvp"] + [f"-Ptb.{k}={v}" for k, v in params.items()]
        cmd += self.get_rtl_file_list(abspath=True) + ["tb.v"]
        stamp = sim_dir / "sim.cmd"
        if not ((sim_dir / "sim.vvp").is_file() and stamp.is_file() and stamp.read_text() == repr(cmd)):
            run = subprocess.run(cmd, cwd=sim_dir, capture_output=True, text=True)
            if run.returncode:
                raise MinifinnError(f"{self.onnx_node.name}: iverilog failed:\n{run.stderr[-2000:]}")
            stamp.write_text(repr(cmd))  # the same design and stream sizes: later runs reuse sim.vvp
        (sim_dir / "out.txt").unlink(missing_ok=True)
        run = subprocess.run(["vvp", "-n", "sim.vvp"], cwd=sim_dir, capture_output=True, text=True)
        lines = (sim_dir / "out.txt").read_text().split("\n") if (sim_dir / "out.txt").is_file() else []
        data = [int(ln, 16) for ln in lines if ln and not ln.startswith("cycles")]
        cycles = [int(ln.split()[1]) for ln in lines if ln.startswith("cycles")]
        if run.returncode or len(data) != n_out:
            raise MinifinnError(f"{self.onnx_node.name}: rtlsim produced {len(data)} of {n_out} outputs "
                                f"({run.stdout[-500:]})")
        return data, (cycles[0] if cycles else 0)
