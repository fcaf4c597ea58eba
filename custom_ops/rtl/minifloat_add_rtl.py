"""MinifloatAdd_rtl: Verilog backend (custom_ops/rtl/minifloat_add.v + mf_decode / mf_threshold of the MAC library).

``generate_hdl`` (FINN's ``PrepareIP``) writes thresholds.hex / codes.hex and the two-input top wrapper; rtlsim runs
Icarus with the two-stream AXI testbench (random valid gaps on both inputs, random backpressure).
"""

import shutil
import subprocess
from pathlib import Path

import numpy as np

from compiler.errors import MinifinnError, UnsupportedNodeError
from custom_ops.codegen import codes_of, pack_words, unpack_words, write_hex
from custom_ops.mac import operand_params, verilog_sources
from custom_ops.minifloat_add import MinifloatAdd
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

HERE = Path(__file__).resolve().parent


class MinifloatAdd_rtl(MinifloatAdd, RTLBackend):
    def get_nodeattr_types(self):
        attrs = MinifloatAdd.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def _top_name(self):
        return f"{self.onnx_node.name}_minifloat_add"

    def get_verilog_top_module_name(self):
        return self._top_name()

    def get_rtl_file_list(self, abspath=False):
        names = [Path(p).name for p in verilog_sources()] + ["minifloat_add.v", f"{self._top_name()}.v"]
        if not abspath:
            return names
        return [str(Path(self.get_nodeattr("code_gen_dir_ipgen")) / n) for n in names]

    def generate_hdl(self, model, fpgapart, clk):
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        code_dir.mkdir(parents=True, exist_ok=True)
        c, pe, acc = self.get_nodeattr("NumChannels"), self.get_nodeattr("PE"), self.acc_bits()
        k0, k1 = (int(k) for k in self.get_nodeattr("coeffs"))
        if max(abs(k0), abs(k1)) >= 2**63:
            raise UnsupportedNodeError(f"{self.onnx_node.name}: coefficients {k0}, {k1} exceed 64 bits")
        t = self.thresholds(model)
        write_hex(code_dir / "thresholds.hex", pack_words(np.asarray(t, dtype=object), acc + 1),
                  self.n_thresholds() * (acc + 1))
        ofmt = self.output_format()
        write_hex(code_dir / "codes.hex", [int(v) for v in codes_of(ofmt.values(), ofmt)], ofmt.bits)
        signs = self.signs() or [1] * c
        mask = sum(1 << ch for ch, s in enumerate(signs) if s < 0)
        (ab, ae, asg), (bb, be, bsg) = operand_params(self.in_format(0)), operand_params(self.in_format(1))
        params = [f".C({c})", f".PE({pe})", f".A_BITS({ab})", f".A_E({ae})", f".A_SIGNED({asg})",
                  f".B_BITS({bb})", f".B_E({be})", f".B_SIGNED({bsg})",
                  f".K0({'-' if k0 < 0 else ''}64'sd{abs(k0)})", f".K1({'-' if k1 < 0 else ''}64'sd{abs(k1)})",
                  f".ACC_BITS({acc})", f".N_THRES({self.n_thresholds()})", f".O_BITS({ofmt.bits})",
                  f".SIGNS({c}'h{mask:x})", f'.THRESH_FILE("{(code_dir / "thresholds.hex").as_posix()}")',
                  f'.CODE_FILE("{(code_dir / "codes.hex").as_posix()}")']
        text = (HERE / "axis2_wrapper.v").read_text().replace("$CORE$", "minifloat_add")
        text = text.replace("$TOP$", self._top_name()).replace("$PARAMS$", ",\n        ".join(params))
        text = text.replace("$IW$", str(self.get_instream_width(0))).replace("$IW1$", str(self.get_instream_width(1)))
        text = text.replace("$OW$", str(self.get_outstream_width()))
        (code_dir / f"{self._top_name()}.v").write_text(text)
        for src in verilog_sources() + [HERE / "minifloat_add.v"]:
            shutil.copy(src, code_dir / Path(src).name)
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
        (sim_dir / "tb.v").write_text((HERE / "tb_axis2.v").read_text().replace("$TOP$", self._top_name()))
        self.set_nodeattr("rtlsim_dir", str(sim_dir))
        self.set_nodeattr("rtlsim_so", str(sim_dir))

    def _run_rtlsim(self, x0, x1):
        sim_dir = Path(self.get_nodeattr("rtlsim_dir") or "")
        if not sim_dir.is_dir():
            raise MinifinnError(f"{self.onnx_node.name}: call PrepareRTLSim (prepare_rtlsim) before rtlsim")
        pe = self.get_nodeattr("PE")
        w0 = pack_words(codes_of(np.asarray(x0, dtype=np.float32), self.in_format(0)).reshape(-1, pe),
                        self.in_format(0).bits)
        w1 = pack_words(codes_of(np.asarray(x1, dtype=np.float32), self.in_format(1)).reshape(-1, pe),
                        self.in_format(1).bits)
        write_hex(sim_dir / "in.hex", w0, self.get_instream_width(0))
        write_hex(sim_dir / "in1.hex", w1, self.get_instream_width(1))
        n_out = self.get_number_output_values()
        params = dict(IW=self.get_instream_width(0), IW1=self.get_instream_width(1), OW=self.get_outstream_width(),
                      NIN=len(w0), NIN1=len(w1), NOUT=n_out)
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
        return ofmt.decode(unpack_words(data, ofmt.bits, pe).astype(np.int64)).reshape(self.get_normal_output_shape())

    def execute_node(self, context, graph):
        if self.get_nodeattr("exec_mode") == "rtlsim":
            node = self.onnx_node
            context[node.output[0]] = self._run_rtlsim(context[node.input[0]], context[node.input[1]])
        else:
            MinifloatAdd.execute_node(self, context, graph)
