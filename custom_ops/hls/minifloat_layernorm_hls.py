"""MinifloatLayerNorm_hls: HLS C++ backend of MinifloatLayerNorm (custom_ops/hls/minifloat_layernorm.hpp).

Like MinifloatSoftmax_hls: FINN's HLSBackend fillers render ``minifloat_layernorm_top.cpp.tpl``;
``code_generation_ipgen`` writes ``top_<node>.cpp`` + ``hls_syn_<node>.tcl`` for Vitis HLS; cppsim compiles the same
top with g++ against the ap_types headers of the installed hls4ml wheel (``cppsim_main.cpp.tpl`` drives it).
"""

import subprocess
from pathlib import Path

import numpy as np

from compiler.errors import MinifinnError
from custom_ops.codegen import codes_of, pack_words, unpack_words, write_hex
from custom_ops.hls.minifloat_mvau_hls import _ap_const, _render
from custom_ops.mac import ap_types_include_dir
from custom_ops.minifloat_layernorm import MinifloatLayerNorm
from finn.custom_op.fpgadataflow.hlsbackend import HLSBackend
from finn.util.basic import make_build_dir

HERE = Path(__file__).resolve().parent


class MinifloatLayerNorm_hls(MinifloatLayerNorm, HLSBackend):
    def get_nodeattr_types(self):
        attrs = MinifloatLayerNorm.get_nodeattr_types(self)
        attrs.update(HLSBackend.get_nodeattr_types(self))
        return attrs

    def _template_args(self):
        w = self.widths()
        return [self.get_nodeattr("NumChannels"), self.get_nodeattr("PE"), self.input_format().bits,
                self.output_format().bits, self.n_thresholds(), w["A"], w["S1"], w["S2"], w["V"], w["N"], w["Q"],
                w["Z"], self.get_nodeattr("R")]

    # --- HLSBackend code_gen_dict fillers ------------------------------------------------------------------------
    def global_includes(self):
        self.code_gen_dict["$GLOBALS$"] = ['#include "minifloat_layernorm.hpp"']

    def defines(self, var):
        self.code_gen_dict["$DEFINES$"] = [f"// {var}: {self.onnx_node.name}, LayerNorm over "
                                           f"{self.get_nodeattr('NumChannels')} channels, R={self.get_nodeattr('R')}"]

    def blackboxfunction(self):
        self.code_gen_dict["$BLACKBOXFUNCTION$"] = [
            f"void {self.onnx_node.name}(hls::stream<ap_uint<{self.get_instream_width()}> > &in0_V, "
            f"hls::stream<ap_uint<{self.get_outstream_width()}> > &out0_V)"
        ]

    def pragmas(self):
        self.code_gen_dict["$PRAGMAS$"] = [
            "#pragma HLS INTERFACE axis port=in0_V", "#pragma HLS INTERFACE axis port=out0_V",
            "#pragma HLS INTERFACE ap_ctrl_none port=return",
            "#pragma HLS BIND_STORAGE variable=ln_dec type=rom_1p impl=lutram",
        ]

    def docompute(self):
        args = ", ".join(str(a) for a in self._template_args())
        self.code_gen_dict["$DOCOMPUTE$"] = [
            f"    minifloat_layernorm<{args}>(in0_V, out0_V, ln_dec, ln_thr, ln_neg, ln_codes, ln_eps, {self.rows()});"
        ]

    def generate_params(self, model, path):
        w, fi, fo = self.widths(), self.input_format(), self.output_format()
        ib = fi.bits
        codes = np.arange(2 ** ib)
        if fi.is_minifloat:
            ints = [int(v) for v in np.rint(np.ldexp(fi.decode(codes).astype(np.float64), -fi.lsb_exponent))]
        else:
            ints = [int(c) - (1 << ib) if fi.signed and c >> (ib - 1) else int(c) for c in codes]
        t = self.thresholds(model)
        neg = [1 if s < 0 else 0 for s in (self.signs() or [1] * self.get_nodeattr("NumChannels"))]
        out_codes = [int(c) for c in codes_of(fo.values(), fo)]
        lines = [f"static const ap_int<{w['A']}> ln_dec[{len(ints)}] = {{"
                 + ", ".join(_ap_const("ap_int", w["A"], v) for v in ints) + "};"]
        rows = ["{" + ", ".join(_ap_const("ap_int", w["Z"] + 1, v) for v in row) + "}" for row in t]
        lines.append(f"static const ap_int<{w['Z'] + 1}> ln_thr[{t.shape[0]}][{t.shape[1]}] = {{" + ", ".join(rows)
                     + "};")
        lines.append(f"static const ap_uint<1> ln_neg[{len(neg)}] = {{" + ", ".join(map(str, neg)) + "};")
        lines.append(f"static const ap_uint<{fo.bits}> ln_codes[{len(out_codes)}] = {{"
                     + ", ".join(_ap_const("ap_uint", fo.bits, v) for v in out_codes) + "};")
        lines.append(f"static const ap_uint<{w['V']}> ln_eps = {_ap_const('ap_uint', w['V'], self.get_nodeattr('epsTerm'))};")
        self.code_gen_dict["$PARAMS$"] = lines

    def get_ap_int_max_w(self):
        w = self.widths()
        return max(1024, int(np.ceil((2 * self.get_nodeattr("R") + w["V"] + 8) / 1024)) * 1024)

    def _top_text(self, model, var):
        self.code_gen_dict.clear()
        self.generate_params(model, None)
        self.global_includes()
        self.defines(var)
        self.blackboxfunction()
        self.pragmas()
        self.docompute()
        mapping = {k: "\n".join(v) for k, v in self.code_gen_dict.items()}
        mapping["$AP_INT_MAX_W$"] = str(self.get_ap_int_max_w())
        mapping["$NAME$"] = self.onnx_node.name
        self.code_gen_dict.clear()
        return _render("minifloat_layernorm_top.cpp.tpl", mapping)

    # --- vendor path: C++ + tcl for Vitis HLS --------------------------------------------------------------------
    def code_generation_ipgen(self, model, fpgapart, clk):
        node = self.onnx_node
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        code_dir.mkdir(parents=True, exist_ok=True)
        (code_dir / f"top_{node.name}.cpp").write_text(self._top_text(model, "ipgen"))
        tcl = _render("hls_syn.tcl.tpl", {
            "$NAME$": node.name, "$HWSRCDIR$": str(code_dir), "$MACDIR$": str(HERE), "$HLSDIR$": str(HERE),
            "$FPGAPART$": fpgapart, "$CLKPERIOD$": str(clk),
            "$DIRECTIVES$": "\n".join(self.ipgen_default_directives()),
        })
        (code_dir / f"hls_syn_{node.name}.tcl").write_text(tcl)

    # --- cppsim: g++ + ap_types from hls4ml ----------------------------------------------------------------------
    def code_generation_cppsim(self, model):
        node = self.onnx_node
        path = self.get_nodeattr("code_gen_dir_cppsim")
        if not path:
            path = make_build_dir(prefix=f"code_gen_cppsim_{node.name}_")
            self.set_nodeattr("code_gen_dir_cppsim", str(path))
        code_dir = Path(path)
        code_dir.mkdir(parents=True, exist_ok=True)
        (code_dir / f"top_{node.name}.cpp").write_text(self._top_text(model, "cppsim"))
        main = _render("cppsim_main.cpp.tpl", {
            "$NAME$": node.name, "$IW$": str(self.get_instream_width()), "$OW$": str(self.get_outstream_width()),
            "$IN1_DECL$": "", "$CALL_ARGS$": "in0_V, out0_V", "$IN1_CHECK$": "",
        })
        (code_dir / "execute_MinifloatLayerNorm.cpp").write_text(main)

    def compile_singlenode_code(self):
        code_dir = Path(self.get_nodeattr("code_gen_dir_cppsim"))
        exe = code_dir / "node_model"
        cmd = ["g++", "-std=c++14", "-O1", f"-I{ap_types_include_dir()}", f"-I{HERE}", f"-I{code_dir}",
               str(code_dir / "execute_MinifloatLayerNorm.cpp"), "-o", str(exe)]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode:
            raise MinifinnError(f"{self.onnx_node.name}: cppsim compilation failed:\n{run.stderr[-3000:]}")
        self.set_nodeattr("executable_path", str(exe))

    def _run_cppsim(self, x):
        exe = self.get_nodeattr("executable_path")
        if not exe or not Path(exe).is_file():
            raise MinifinnError(f"{self.onnx_node.name}: no cppsim executable; run PrepareCppSim + CompileCppSim")
        code_dir = Path(self.get_nodeattr("code_gen_dir_cppsim"))
        fi, fo, pe = self.input_format(), self.output_format(), self.get_nodeattr("PE")
        words = pack_words(codes_of(np.asarray(x, dtype=np.float32), fi).reshape(-1, pe), fi.bits)
        write_hex(code_dir / "in.hex", words, self.get_instream_width())
        run = subprocess.run([exe], cwd=code_dir, capture_output=True, text=True)
        if run.returncode:
            raise MinifinnError(f"{self.onnx_node.name}: cppsim failed: {run.stderr[-1000:]}")
        data = [int(ln, 16) for ln in (code_dir / "out.txt").read_text().split()]
        if len(data) != self.get_number_output_values():
            raise MinifinnError(f"{self.onnx_node.name}: cppsim produced {len(data)} of "
                                f"{self.get_number_output_values()} output words")
        codes = unpack_words(data, fo.bits, pe).astype(np.int64)
        return fo.decode(codes).reshape(self.get_normal_output_shape())

    def execute_node(self, context, graph):
        mode = self.get_nodeattr("exec_mode")
        node = self.onnx_node
        if mode == "cppsim":
            context[node.output[0]] = self._run_cppsim(context[node.input[0]])
        elif mode == "rtlsim":
            raise MinifinnError(f"{node.name}: MinifloatLayerNorm has no RTL backend here (rtlsim of its HLS needs "
                                "Vitis HLS); use cppsim (exec_mode='cppsim') or the Python model")
        else:
            MinifloatLayerNorm.execute_node(self, context, graph)
