"""MinifloatMVAU_hls: HLS C++ backend of MinifloatMVAU (custom_ops/hls/minifloat_mvau.hpp + the MAC library).

Follows FINN's HLSBackend structure (``global_includes``, ``defines``, ``blackboxfunction``, ``pragmas``,
``docompute`` fill ``code_gen_dict``), but renders its own templates (``top.cpp.tpl``, ``hls_syn.tcl.tpl``,
``cppsim_main.cpp.tpl``) because FINN's include finn-hlslib, which finn-plus does not ship and which this op does
not need. ``code_generation_ipgen`` writes ``top_<node>.cpp`` + ``hls_syn_<node>.tcl`` (FINN's names, so FINN's
``HLSSynthIP`` runs Vitis HLS on them where it is installed). cppsim compiles the same top file with g++ against the
ap_types headers of the installed hls4ml wheel. With ``dynamic_input = 1`` the top function has a second stream
``in1_V`` (FINN's MVAU mem_mode "dynamic" word order, see ``MinifloatMVAU``) and no weight constants.
"""

import subprocess
from pathlib import Path

import numpy as np

from compiler.errors import MinifinnError
from custom_ops.codegen import codes_of, pack_words, unpack_words, write_hex
from custom_ops.mac import ap_types_include_dir, hls_include_dir, operand_params
from custom_ops.minifloat_mvau import MinifloatMVAU
from finn.custom_op.fpgadataflow.hlsbackend import HLSBackend
from finn.util.basic import make_build_dir

HERE = Path(__file__).resolve().parent


def _render(template, mapping):
    text = (HERE / template).read_text()
    for key, value in mapping.items():
        text = text.replace(key, value)
    return text


def _ap_const(kind, width, value):
    """C++ constant of an ap_int/ap_uint: a 64-bit literal when the value fits (fast to compile: thousands of string
    constructors made g++ take ~25 s), else the decimal string constructor (hex text like "0b.." would parse as a
    prefix)."""
    v = int(value)
    if kind == "ap_uint" and 0 <= v < 2**64:
        return f"{kind}<{width}>({v}ULL)"
    if kind == "ap_int" and -(2**63) < v < 2**63:
        return f"{kind}<{width}>({v}LL)"
    return f'{kind}<{width}>("{v}", 10)'


class MinifloatMVAU_hls(MinifloatMVAU, HLSBackend):
    """HLS C++ MinifloatMVAU: embedded weights (``minifloat_mvau``), or (dynamic_input = 1) the matrix stream in1_V
    buffered once per group (``minifloat_mvau_dyn``); cppsim feeds in1_V from in1.hex."""

    def get_nodeattr_types(self):
        attrs = MinifloatMVAU.get_nodeattr_types(self)
        attrs.update(HLSBackend.get_nodeattr_types(self))
        return attrs

    def _template_args(self):
        fa, fw = self.input_format(), self.weight_format()
        (ab, ae, asg), (wb, we, wsg) = operand_params(fa), operand_params(fw)
        nt = max(self.n_thresholds(), 1)
        return [self.get_nodeattr("MW"), self.get_nodeattr("MH"), self.get_nodeattr("PE"), self.get_nodeattr("SIMD"),
                ab, ae, "true" if asg else "false", wb, we, "true" if wsg else "false", self.acc_bits(),
                "true" if self.get_nodeattr("noActivation") else "false", nt, int(nt).bit_length() + 1,
                self.get_output_datatype().bitwidth()]

    # --- HLSBackend code_gen_dict fillers ------------------------------------------------------------------------
    def global_includes(self):
        self.code_gen_dict["$GLOBALS$"] = ['#include "mf_mac.hpp"', '#include "minifloat_mvau.hpp"']

    def defines(self, var):
        self.code_gen_dict["$DEFINES$"] = [f"// {var}: {self.onnx_node.name}, exact {self.input_format().name} x "
                                           f"{self.weight_format().name} MACs, {self.acc_bits()}-bit accumulators"]

    def blackboxfunction(self):
        in1 = (f"hls::stream<ap_uint<{self.get_instream_width(1)}> > &in1_V, "
               if self.get_nodeattr("dynamic_input") else "")
        self.code_gen_dict["$BLACKBOXFUNCTION$"] = [
            f"void {self.onnx_node.name}(hls::stream<ap_uint<{self.get_instream_width()}> > &in0_V, {in1}"
            f"hls::stream<ap_uint<{self.get_outstream_width()}> > &out0_V)"
        ]

    def pragmas(self):
        pragmas = ["#pragma HLS INTERFACE axis port=in0_V", "#pragma HLS INTERFACE axis port=out0_V",
                   "#pragma HLS INTERFACE ap_ctrl_none port=return"]
        if self.get_nodeattr("dynamic_input"):
            pragmas.insert(1, "#pragma HLS INTERFACE axis port=in1_V")
        else:
            pragmas.append("#pragma HLS BIND_STORAGE variable=weights type=rom_2p impl="
                           + {"distributed": "lutram", "ultra": "uram"}.get(self.get_nodeattr("ram_style"), "auto"))
        self.code_gen_dict["$PRAGMAS$"] = pragmas

    def docompute(self):
        args = ", ".join(str(a) for a in self._template_args())
        if self.get_nodeattr("dynamic_input"):
            groups, vecs = self.dynamic_groups()
            nf, sf = self.folds()
            width = self.get_nodeattr("PE") * self.weight_format().bits
            lines = [f"    static ap_uint<{width}> wbuf[{self.get_nodeattr('SIMD')}][{nf * sf}];  // one matrix",
                     "#pragma HLS ARRAY_PARTITION variable=wbuf complete dim=1"]
            impl = {"block": "bram", "distributed": "lutram", "ultra": "uram"}.get(self.get_nodeattr("ram_style"))
            if impl:
                lines.append(f"#pragma HLS BIND_STORAGE variable=wbuf type=ram_s2p impl={impl}")
            lines.append(f"    minifloat_mvau_dyn<{args}>(in0_V, in1_V, out0_V, wbuf, thresholds, codes, {groups}, "
                         f"{vecs});")
        else:
            reps = int(np.prod(self.get_nodeattr("numInputVectors")))
            lines = [f"    minifloat_mvau<{args}>(in0_V, out0_V, weights, thresholds, codes, {reps});"]
        self.code_gen_dict["$DOCOMPUTE$"] = lines

    def generate_params(self, model, path):
        """params_<node>.h: weights (ROM words), thresholds and the count -> code table as C++ constants."""
        nf, sf = self.folds()
        pe, simd = self.get_nodeattr("PE"), self.get_nodeattr("SIMD")
        lines = []
        if not self.get_nodeattr("dynamic_input"):  # dynamic: the matrix arrives on in1_V
            words = self.weight_rom_words(model)
            ww = pe * simd * self.weight_format().bits
            lines = [f"static const ap_uint<{ww}> weights[{nf * sf}] = {{"]
            lines += [f"    {_ap_const('ap_uint', ww, w)}," for w in words] + ["};"]
        acc, nt = self.acc_bits(), max(self.n_thresholds(), 1)
        ob = self.get_output_datatype().bitwidth()
        if self.n_thresholds():
            thr = self.threshold_ints(model)
            rows = [", ".join(_ap_const("ap_int", acc, t) for t in row) for row in thr]
            ofmt = self.output_format()
            table = [int(c) for c in codes_of(ofmt.values(), ofmt)]
        else:
            rows = [f"ap_int<{acc}>(0)" for _ in range(self.get_nodeattr("MH"))]
            table = [0, 0]
        lines += [f"static const ap_int<{acc}> thresholds[{self.get_nodeattr('MH')}][{nt}] = {{"]
        lines += [f"    {{{r}}}," for r in rows] + ["};"]
        lines += [f"static const ap_uint<{ob}> codes[{nt + 1}] = {{{', '.join(str(c) for c in table)}}};"]
        self.code_gen_dict["$PARAMS$"] = lines

    def get_ap_int_max_w(self):
        widths = [self.get_instream_width(), self.get_outstream_width(),
                  self.get_nodeattr("PE") * self.get_nodeattr("SIMD") * self.weight_format().bits, self.acc_bits()]
        return max(1024, int(np.ceil(max(widths) / 1024)) * 1024)

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
        return _render("top.cpp.tpl", mapping)

    # --- vendor path: C++ + tcl for Vitis HLS --------------------------------------------------------------------
    def code_generation_ipgen(self, model, fpgapart, clk):
        node = self.onnx_node
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        code_dir.mkdir(parents=True, exist_ok=True)
        (code_dir / f"top_{node.name}.cpp").write_text(self._top_text(model, "ipgen"))
        tcl = _render("hls_syn.tcl.tpl", {
            "$NAME$": node.name, "$HWSRCDIR$": str(code_dir), "$MACDIR$": str(hls_include_dir()),
            "$HLSDIR$": str(HERE), "$FPGAPART$": fpgapart, "$CLKPERIOD$": str(clk),
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
        dyn = self.get_nodeattr("dynamic_input")
        main = _render("cppsim_main.cpp.tpl", {
            "$NAME$": node.name, "$IW$": str(self.get_instream_width()), "$OW$": str(self.get_outstream_width()),
            "$IN1_DECL$": (f'    hls::stream<ap_uint<{self.get_instream_width(1)}> > in1_V("in1_V");\n'
                           '    read_hex("in1.hex", in1_V);') if dyn else "",
            "$CALL_ARGS$": "in0_V, in1_V, out0_V" if dyn else "in0_V, out0_V",
            "$IN1_CHECK$": ('    if (!in1_V.empty()) { std::cerr << "matrix words left over\\n"; return 1; }'
                            if dyn else ""),
        })
        (code_dir / "execute_MinifloatMVAU.cpp").write_text(main)

    def compile_singlenode_code(self):
        code_dir = Path(self.get_nodeattr("code_gen_dir_cppsim"))
        exe = code_dir / "node_model"
        cmd = ["g++", "-std=c++14", "-O1", f"-I{ap_types_include_dir()}", f"-I{hls_include_dir()}", f"-I{HERE}",
               f"-I{code_dir}", str(code_dir / "execute_MinifloatMVAU.cpp"), "-o", str(exe)]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode:
            raise MinifinnError(f"{self.onnx_node.name}: cppsim compilation failed:\n{run.stderr[-3000:]}")
        self.set_nodeattr("executable_path", str(exe))

    def _run_cppsim(self, x, w=None):
        exe = self.get_nodeattr("executable_path")
        if not exe or not Path(exe).is_file():
            raise MinifinnError(f"{self.onnx_node.name}: no cppsim executable; run PrepareCppSim + CompileCppSim")
        code_dir = Path(self.get_nodeattr("code_gen_dir_cppsim"))
        fa = self.input_format()
        words = pack_words(codes_of(x, fa).reshape(-1, self.get_nodeattr("SIMD")), fa.bits)
        write_hex(code_dir / "in.hex", words, self.get_instream_width())
        if self.get_nodeattr("dynamic_input"):
            write_hex(code_dir / "in1.hex", self.dynamic_matrix_words(w), self.get_instream_width(1))
        run = subprocess.run([exe], cwd=code_dir, capture_output=True, text=True)
        if run.returncode:
            raise MinifinnError(f"{self.onnx_node.name}: cppsim failed: {run.stderr[-1000:]}")
        data = [int(ln, 16) for ln in (code_dir / "out.txt").read_text().split()]
        if len(data) != self.get_number_output_values():
            raise MinifinnError(f"{self.onnx_node.name}: cppsim produced {len(data)} of "
                                f"{self.get_number_output_values()} output words")
        ob, pe = self.get_output_datatype().bitwidth(), self.get_nodeattr("PE")
        if self.get_nodeattr("noActivation"):
            vals = unpack_words(data, ob, pe, signed=True)
        else:
            vals = self.output_format().decode(unpack_words(data, ob, pe).astype(np.int64))
        return vals.reshape(self.get_normal_output_shape())

    def execute_node(self, context, graph):
        mode = self.get_nodeattr("exec_mode")
        node = self.onnx_node
        if mode == "cppsim":
            w = context[node.input[1]] if self.get_nodeattr("dynamic_input") else None
            context[node.output[0]] = self._run_cppsim(context[node.input[0]], w)
        elif mode == "rtlsim":
            raise MinifinnError(
                f"{node.name}: rtlsim of the HLS variant needs Vitis HLS to produce Verilog; use MinifloatMVAU_rtl "
                "(preferred_impl_style='rtl') for simulation without vendor tools"
            )
        else:
            MinifloatMVAU.execute_node(self, context, graph)
