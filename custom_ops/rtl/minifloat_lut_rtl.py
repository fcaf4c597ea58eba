"""MinifloatLUT_rtl: Verilog backend (custom_ops/rtl/minifloat_lut.v; one ROM of output codes per lane).

``generate_hdl`` (FINN's ``PrepareIP``) writes table.hex and a top wrapper; rtlsim runs Icarus with the generic
AXI-stream testbench, like the other minifinn RTL ops.
"""

import shutil
import subprocess
from pathlib import Path

import numpy as np

from compiler.errors import MinifinnError
from custom_ops.codegen import codes_of, pack_words, unpack_words, write_hex
from custom_ops.minifloat_lut import MinifloatLUT
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

HERE = Path(__file__).resolve().parent


class MinifloatLUT_rtl(MinifloatLUT, RTLBackend):
    def get_nodeattr_types(self):
        attrs = MinifloatLUT.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def _top_name(self):
        return f"{self.onnx_node.name}_minifloat_lut"

    def get_verilog_top_module_name(self):
        return self._top_name()

    def get_rtl_file_list(self, abspath=False):
        names = ["minifloat_lut.v", f"{self._top_name()}.v"]
        if not abspath:
            return names
        return [str(Path(self.get_nodeattr("code_gen_dir_ipgen")) / n) for n in names]

    def generate_hdl(self, model, fpgapart, clk):
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        code_dir.mkdir(parents=True, exist_ok=True)
        ib, ob = self.input_format().bits, self.output_format().bits
        write_hex(code_dir / "table.hex", [int(c) for c in self.table_codes()], ob)
        params = [f".PE({self.get_nodeattr('PE')})", f".I_BITS({ib})", f".O_BITS({ob})",
                  f'.TABLE_FILE("{(code_dir / "table.hex").as_posix()}")']
        text = (HERE / "axis_wrapper.v").read_text().replace("$CORE$", "minifloat_lut")
        text = text.replace("$TOP$", self._top_name()).replace("$PARAMS$", ",\n        ".join(params))
        text = text.replace("$IW$", str(self.get_instream_width())).replace("$OW$", str(self.get_outstream_width()))
        (code_dir / f"{self._top_name()}.v").write_text(text)
        shutil.copy(HERE / "minifloat_lut.v", code_dir / "minifloat_lut.v")
        self.set_nodeattr("ipgen_path", str(code_dir))
        self.set_nodeattr("ip_path", str(code_dir))

    def code_generation_ipi(self):
        cmd = [f"add_files -copy_to [get_property DIRECTORY [current_project]]/{Path(f).name} -norecurse {f}"
               for f in self.get_rtl_file_list(abspath=True)]
        cmd.append(f"create_bd_cell -type module -reference {self._top_name()} {self.onnx_node.name}")
        return cmd

    def prepare_rtlsim(self, behav=False):
        if shutil.which("iverilog") is None:
            raise MinifinnError("rtlsim needs Icarus Verilog: apt-get install iverilog")
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        if not (code_dir / f"{self._top_name()}.v").is_file():
            raise MinifinnError(f"{self.onnx_node.name}: no generated Verilog in {code_dir}; run PrepareIP first")
        sim_dir = code_dir / "rtlsim"
        sim_dir.mkdir(exist_ok=True)
        (sim_dir / "tb.v").write_text((HERE / "tb_axis.v").read_text().replace("$TOP$", self._top_name()))
        self.set_nodeattr("rtlsim_dir", str(sim_dir))
        self.set_nodeattr("rtlsim_so", str(sim_dir))

    def _run_rtlsim(self, x):
        sim_dir = Path(self.get_nodeattr("rtlsim_dir") or "")
        if not sim_dir.is_dir():
            raise MinifinnError(f"{self.onnx_node.name}: call PrepareRTLSim (prepare_rtlsim) before rtlsim")
        fi, fo, pe = self.input_format(), self.output_format(), self.get_nodeattr("PE")
        words = pack_words(codes_of(np.asarray(x, dtype=np.float32), fi).reshape(-1, pe), fi.bits)
        write_hex(sim_dir / "in.hex", words, self.get_instream_width())
        n_out = self.get_number_output_values()
        params = dict(IW=self.get_instream_width(), OW=self.get_outstream_width(), NIN=len(words), NOUT=n_out)
        cmd = ["iverilog", "-g2005", "-s", "tb", "-o", "sim.vvp"] + [f"-Ptb.{k}={v}" for k, v in params.items()]
        run = subprocess.run(cmd + self.get_rtl_file_list(abspath=True) + ["tb.v"], cwd=sim_dir,
                             capture_output=True, text=True)
        if run.returncode:
            raise MinifinnError(f"{self.onnx_node.name}: iverilog failed:\n{run.stderr[-2000:]}")
        run = subprocess.run(["vvp", "-n", "sim.vvp"], cwd=sim_dir, capture_output=True, text=True)
        lines = (sim_dir / "out.txt").read_text().split("\n") if (sim_dir / "out.txt").is_file() else []
        data = [int(ln, 16) for ln in lines if ln and not ln.startswith("cycles")]
        if run.returncode or len(data) != n_out:
            raise MinifinnError(f"{self.onnx_node.name}: rtlsim produced {len(data)} of {n_out} outputs")
        codes = unpack_words(data, fo.bits, pe).astype(np.int64)
        return fo.decode(codes).reshape(self.get_normal_output_shape())

    def execute_node(self, context, graph):
        if self.get_nodeattr("exec_mode") == "rtlsim":
            node = self.onnx_node
            context[node.output[0]] = self._run_rtlsim(context[node.input[0]])
        else:
            MinifloatLUT.execute_node(self, context, graph)
