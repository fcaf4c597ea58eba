"""MinifloatMVAU_rtl: Verilog backend of MinifloatMVAU (custom_ops/rtl/minifloat_mvau.v + the MAC library).

``generate_hdl`` writes the weight/threshold/code-table memory files and a top wrapper into ``code_gen_dir_ipgen``
(FINN's ``PrepareIP`` calls it). rtlsim runs without Vivado: ``prepare_rtlsim`` compiles the design with Icarus
Verilog and a generic AXI-stream testbench (random valid gaps and backpressure), and ``execute_node`` in
``exec_mode="rtlsim"`` streams the input codes through it and decodes the output codes. With ``dynamic_input = 1``
the top has a second AXI stream ``in1_V`` (the matrices, FINN's MVAU mem_mode "dynamic" word order) and the
testbench (``tb_axis2.v``) stalls both input streams at random.
"""

import shutil
import subprocess
from pathlib import Path

import numpy as np

from compiler.errors import MinifinnError, UnsupportedNodeError
from custom_ops.codegen import codes_of, pack_words, unpack_words, write_hex
from custom_ops.mac import operand_params, verilog_sources
from custom_ops.minifloat_mvau import MinifloatMVAU
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

HERE = Path(__file__).resolve().parent


class MinifloatMVAU_rtl(MinifloatMVAU, RTLBackend):
    """Verilog MinifloatMVAU: embedded weights, or (dynamic_input = 1) a matrix stream in1."""

    def get_nodeattr_types(self):
        attrs = MinifloatMVAU.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def _top_name(self):
        return f"{self.onnx_node.name}_minifloat_mvau"

    def get_verilog_top_module_name(self):
        return self._top_name()

    def generate_hdl(self, model, fpgapart, clk):
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        code_dir.mkdir(parents=True, exist_ok=True)
        pe, simd = self.get_nodeattr("PE"), self.get_nodeattr("SIMD")
        fa, fw = self.input_format(), self.weight_format()
        dyn = self.get_nodeattr("dynamic_input")
        if not dyn:
            write_hex(code_dir / "weights.hex", self.weight_rom_words(model), pe * simd * fw.bits)
        acc_bits = self.acc_bits()
        n_thr = self.n_thresholds()
        if n_thr:
            thr = self.threshold_ints(model)
            if thr.shape != (self.get_nodeattr("MH"), n_thr):
                raise UnsupportedNodeError(
                    f"{self.onnx_node.name}: thresholds have shape {thr.shape}, expected "
                    f"({self.get_nodeattr('MH')}, {n_thr}) for output {self.get_nodeattr('outputDataType')}"
                )
            words = pack_words(np.asarray(thr, dtype=object), acc_bits)  # one word per channel, T_0 in the LSBs
            write_hex(code_dir / "thresholds.hex", words, n_thr * acc_bits)
            ofmt = self.output_format()
            write_hex(code_dir / "codes.hex", [int(c) for c in codes_of(ofmt.values(), ofmt)], ofmt.bits)
        (ab, ae, asg), (wb, we, wsg) = operand_params(fa), operand_params(fw)
        params = dict(MW=self.get_nodeattr("MW"), MH=self.get_nodeattr("MH"), PE=pe, SIMD=simd, A_BITS=ab, A_E=ae,
                      A_SIGNED=asg, W_BITS=wb, W_E=we, W_SIGNED=wsg, ACC_BITS=acc_bits,
                      NO_ACT=self.get_nodeattr("noActivation"), N_THRES=max(n_thr, 1),
                      O_BITS=self.get_output_datatype().bitwidth(), DYN=dyn,
                      VECS=self.dynamic_groups()[1] if dyn else 1)
        files = dict(WEIGHT_FILE="weights.hex", THRESH_FILE="thresholds.hex", CODE_FILE="codes.hex")
        plist = [f".{k}({v})" for k, v in params.items()]
        plist += [f'.{k}("{(code_dir / v).as_posix()}")' for k, v in files.items()]
        text = (HERE / "minifloat_mvau_wrapper.v").read_text()
        text = text.replace("$TOP$", self._top_name()).replace("$PARAMS$", ",\n        ".join(plist))
        text = text.replace("$IW$", str(self.get_instream_width())).replace("$OW$", str(self.get_outstream_width()))
        if dyn:
            w1 = self.get_instream_width(1)
            ports = (f",\n    input  wire [{w1}-1:0] in1_V_TDATA,\n    input  wire            in1_V_TVALID,\n"
                     "    output wire            in1_V_TREADY")
            conn = ".in1_V_TDATA(in1_V_TDATA), .in1_V_TVALID(in1_V_TVALID), .in1_V_TREADY(in1_V_TREADY)"
        else:
            ports, conn = "", f".in1_V_TDATA({pe * fw.bits}'d0), .in1_V_TVALID(1'b0), .in1_V_TREADY()"
        text = text.replace("$IN1_PORTS$", ports).replace("$IN1_CONN$", conn)
        (code_dir / f"{self._top_name()}.v").write_text(text)
        for src in verilog_sources() + [HERE / "minifloat_mvau.v"]:
            shutil.copy(src, code_dir / Path(src).name)
        self.set_nodeattr("ipgen_path", str(code_dir))
        self.set_nodeattr("ip_path", str(code_dir))

    def get_rtl_file_list(self, abspath=False):
        names = [Path(p).name for p in verilog_sources()] + ["minifloat_mvau.v", f"{self._top_name()}.v"]
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

    # --- rtlsim without Vivado: Icarus Verilog -------------------------------------------------------------------
    def prepare_rtlsim(self, behav=False):
        if shutil.which("iverilog") is None:
            raise MinifinnError("rtlsim needs Icarus Verilog: apt-get install iverilog")
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        if not (code_dir / f"{self._top_name()}.v").is_file():
            raise MinifinnError(f"{self.onnx_node.name}: no generated Verilog in {code_dir}; run PrepareIP first")
        sim_dir = code_dir / "rtlsim"
        sim_dir.mkdir(exist_ok=True)
        tb_file = "tb_axis2.v" if self.get_nodeattr("dynamic_input") else "tb_axis.v"
        tb = (HERE / tb_file).read_text().replace("$TOP$", self._top_name())
        (sim_dir / "tb.v").write_text(tb)
        self.set_nodeattr("rtlsim_dir", str(sim_dir))
        self.set_nodeattr("rtlsim_so", str(sim_dir))  # FINN checks this attribute; here: the Icarus run dir

    def _run_rtlsim(self, x, w=None, stalls=True):
        """Stream x (and, for dynamic_input, the matrices w) through the Icarus testbench; ``stalls`` = random valid
        gaps on every input stream and random backpressure on the output (``False``: full rate, for cycle counts)."""
        sim_dir = Path(self.get_nodeattr("rtlsim_dir"))
        if not sim_dir.is_dir():
            raise MinifinnError(f"{self.onnx_node.name}: call PrepareRTLSim (prepare_rtlsim) before rtlsim")
        fa = self.input_format()
        simd = self.get_nodeattr("SIMD")
        x_codes = codes_of(x, fa).reshape(-1, simd)
        words = pack_words(x_codes, fa.bits)
        write_hex(sim_dir / "in.hex", words, self.get_instream_width())
        n_out = self.get_number_output_values()
        params = dict(IW=self.get_instream_width(), OW=self.get_outstream_width(), NIN=len(words), NOUT=n_out,
                      GAPS=int(bool(stalls)))
        if self.get_nodeattr("dynamic_input"):
            mwords = self.dynamic_matrix_words(w)
            write_hex(sim_dir / "in1.hex", mwords, self.get_instream_width(1))
            params.update(IW1=self.get_instream_width(1), NIN1=len(mwords))
        cmd = ["iverilog", "-g2005", "-s", "tb", "-o", "sim.vvp"] + [f"-Ptb.{k}={v}" for k, v in params.items()]
        cmd += self.get_rtl_file_list(abspath=True) + ["tb.v"]
        run = subprocess.run(cmd, cwd=sim_dir, capture_output=True, text=True)
        if run.returncode:
            raise MinifinnError(f"{self.onnx_node.name}: iverilog failed:\n{run.stderr[-2000:]}")
        run = subprocess.run(["vvp", "-n", "sim.vvp"], cwd=sim_dir, capture_output=True, text=True)
        lines = (sim_dir / "out.txt").read_text().split("\n") if (sim_dir / "out.txt").is_file() else []
        data = [ln for ln in lines if ln and not ln.startswith("cycles")]
        cyc = [ln for ln in lines if ln.startswith("cycles")]
        if run.returncode or len(data) != n_out:
            raise MinifinnError(f"{self.onnx_node.name}: rtlsim produced {len(data)} of {n_out} outputs "
                                f"({run.stdout[-500:]})")
        self.set_nodeattr("cycles_rtlsim", int(cyc[0].split()[1]) if cyc else 0)
        odt_bits = self.get_output_datatype().bitwidth()
        pe = self.get_nodeattr("PE")
        if self.get_nodeattr("noActivation"):
            vals = unpack_words([int(d, 16) for d in data], odt_bits, pe, signed=True)
        else:
            ofmt = self.output_format()
            codes = unpack_words([int(d, 16) for d in data], odt_bits, pe).astype(np.int64)
            vals = ofmt.decode(codes)
        return vals.reshape(self.get_normal_output_shape())

    def execute_node(self, context, graph):
        if self.get_nodeattr("exec_mode") == "rtlsim":
            node = self.onnx_node
            w = context[node.input[1]] if self.get_nodeattr("dynamic_input") else None
            out = self._run_rtlsim(context[node.input[0]], w)
            context[node.output[0]] = out
        else:
            MinifloatMVAU.execute_node(self, context, graph)
