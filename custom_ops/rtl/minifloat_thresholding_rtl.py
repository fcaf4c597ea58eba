"""MinifloatThresholding_rtl: Verilog backend (custom_ops/rtl/minifloat_thresholding.v + mf_threshold).

``generate_hdl`` (FINN's ``PrepareIP``) writes thresholds.hex / codes.hex and the top wrapper; rtlsim runs Icarus
with the generic AXI-stream testbench (random valid gaps and backpressure), like MinifloatMVAU_rtl.
"""

import shutil
import subprocess
from pathlib import Path

import numpy as np

from compiler.errors import MinifinnError, UnsupportedNodeError
from custom_ops.codegen import codes_of, pack_words, unpack_words, write_hex
from custom_ops.mac import verilog_sources
from custom_ops.minifloat_thresholding import MinifloatThresholding
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

HERE = Path(__file__).resolve().parent


class MinifloatThresholding_rtl(MinifloatThresholding, RTLBackend):
    def get_nodeattr_types(self):
        attrs = MinifloatThresholding.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def _top_name(self):
        return f"{self.onnx_node.name}_minifloat_thresholding"

    def get_verilog_top_module_name(self):
        return self._top_name()

    def generate_hdl(self, model, fpgapart, clk):
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        code_dir.mkdir(parents=True, exist_ok=True)
        c, pe, acc = self.get_nodeattr("NumChannels"), self.get_nodeattr("PE"), self.acc_bits()
        t = self.thresholds(model)
        if t.shape != (c, self.n_thresholds()):
            raise UnsupportedNodeError(f"{self.onnx_node.name}: thresholds {t.shape}, expected ({c}, "
                                       f"{self.n_thresholds()})")
        write_hex(code_dir / "thresholds.hex", pack_words(np.asarray(t, dtype=object), acc + 1),
                  self.n_thresholds() * (acc + 1))
        ofmt = self.output_format()
        write_hex(code_dir / "codes.hex", [int(v) for v in codes_of(ofmt.values(), ofmt)], ofmt.bits)
        signs = self.signs() or [1] * c
        mask = sum(1 << ch for ch, s in enumerate(signs) if s < 0)
        params = dict(C=c, PE=pe, ACC_BITS=acc, N_THRES=self.n_thresholds(), O_BITS=ofmt.bits)
        plist = [f".{k}({v})" for k, v in params.items()] + [f".SIGNS({c}'h{mask:x})"]
        plist += [f'.{k}("{(code_dir / v).as_posix()}")' for k, v in
                  (("THRESH_FILE", "thresholds.hex"), ("CODE_FILE", "codes.hex"))]
        text = (HERE / "axis_wrapper.v").read_text().replace("$CORE$", "minifloat_thresholding")
        text = text.replace("$TOP$", self._top_name()).replace("$PARAMS$", ",\n        ".join(plist))
        text = text.replace("$IW$", str(self.get_instream_width())).replace("$OW$", str(self.get_outstream_width()))
        (code_dir / f"{self._top_name()}.v").write_text(text)
        for src in verilog_sources() + [HERE / "minifloat_thresholding.v"]:
            shutil.copy(src, code_dir / Path(src).name)
        self.set_nodeattr("ipgen_path", str(code_dir))
        self.set_nodeattr("ip_path", str(code_dir))

    def get_rtl_file_list(self, abspath=False):
        names = [Path(p).name for p in verilog_sources()] + ["minifloat_thresholding.v", f"{self._top_name()}.v"]
        if not abspath:
            return names
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        return [str(code_dir / n) for n in names]

    def code_generation_ipi(self):
        files = self.get_rtl_file_list(abspath=True)
        cmd = [f"add_files -copy_to [get_property DIRECTORY [current_project]]/{Path(f).name} -norecurse {f}"
               for f in files]
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

    def _run_rtlsim(self, acc):
        sim_dir = Path(self.get_nodeattr("rtlsim_dir") or "")
        if not sim_dir.is_dir():
            raise MinifinnError(f"{self.onnx_node.name}: call PrepareRTLSim (prepare_rtlsim) before rtlsim")
        bits, pe = self.acc_bits(), self.get_nodeattr("PE")
        mask = (1 << bits) - 1
        flat = np.asarray(acc).reshape(-1, pe)
        words = pack_words(np.array([[int(v) & mask for v in row] for row in flat], dtype=object), bits)
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
        ofmt = self.output_format()
        codes = unpack_words(data, ofmt.bits, pe).astype(np.int64)
        return ofmt.decode(codes).reshape(self.get_normal_output_shape())

    def execute_node(self, context, graph):
        if self.get_nodeattr("exec_mode") == "rtlsim":
            node = self.onnx_node
            context[node.output[0]] = self._run_rtlsim(context[node.input[0]])
        else:
            MinifloatThresholding.execute_node(self, context, graph)
