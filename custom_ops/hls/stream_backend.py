"""HLSStreamBackend: the HLS C++ backend of every minifinn streaming op (FINN's HLSBackend interface).

An op names its compute headers (``HEADERS``) and supplies only what is its own:

- ``template_call()``: the C++ call of its compute function on the streams ``in0_V`` [, ``in1_V``] and ``out0_V``;
  ``compute_prelude()``: lines before that call (local buffers and their pragmas);
- ``param_lines(model)``: its ``static const`` tables (``custom_ops.codegen.const_array``);
- ``extra_pragmas()``: pragmas beyond the AXI-stream interfaces (storage of its tables);
- its stream codec (``custom_ops.stream_codecs``, shared with its RTL backend): ``n_input_streams()`` (a second
  stream is ``in1_V``), ``input_words(context)``, ``decode_output(words)``;
- ``get_ap_int_max_w()`` when an ``ap_int`` is wider than 1024 bits.

The base renders ``stream_top.cpp.tpl`` for Vitis HLS (``code_generation_ipgen``: ``top_<node>.cpp`` and
``hls_syn_<node>.tcl``, FINN's names, so FINN's ``HLSSynthIP`` runs on them) and for cppsim, which compiles the same
top file with g++ against the ap_types headers of the installed hls4ml wheel (``cppsim_main.cpp.tpl`` streams hex
files through it). FINN's own templates include finn-hlslib, which finn-plus does not ship and these ops do not
need. ``execute_node`` runs cppsim in exec_mode "cppsim", else the op's Python model.
"""

import subprocess
from pathlib import Path

import numpy as np

from compiler.errors import MinifinnError
from custom_ops.codegen import render_template, write_hex
from custom_ops.mac import ap_types_include_dir, hls_include_dir
from custom_ops.stream_codecs import StreamCodec
from finn.custom_op.fpgadataflow.hlsbackend import HLSBackend
from finn.util.basic import make_build_dir

HERE = Path(__file__).resolve().parent


class HLSStreamBackend(StreamCodec, HLSBackend):
    HEADERS = ()

    # --- what an op provides ---------------------------------------------------------------------------------------
    def template_call(self):
        raise NotImplementedError(f"{type(self).__name__} must give its compute call")

    def compute_prelude(self):
        return []

    def param_lines(self, model):
        return []

    def extra_pragmas(self):
        return []

    def get_ap_int_max_w(self):
        return 1024

    # --- HLSBackend code_gen_dict fillers ------------------------------------------------------------------------
    def global_includes(self):
        self.code_gen_dict["$GLOBALS$"] = [f'#include "{h}"' for h in self.HEADERS]

    def defines(self, var):
        self.code_gen_dict["$DEFINES$"] = [f"// {var}: {self.onnx_node.name} ({self.onnx_node.op_type})"]

    def blackboxfunction(self):
        ports = [f"hls::stream<ap_uint<{self.get_instream_width(i)}> > &in{i}_V" for i in range(self.n_input_streams())]
        ports.append(f"hls::stream<ap_uint<{self.get_outstream_width()}> > &out0_V")
        self.code_gen_dict["$BLACKBOXFUNCTION$"] = [f"void {self.onnx_node.name}({', '.join(ports)})"]

    def pragmas(self):
        lines = [f"#pragma HLS INTERFACE axis port=in{i}_V" for i in range(self.n_input_streams())]
        lines += ["#pragma HLS INTERFACE axis port=out0_V", "#pragma HLS INTERFACE ap_ctrl_none port=return"]
        self.code_gen_dict["$PRAGMAS$"] = lines + self.extra_pragmas()

    def docompute(self):
        self.code_gen_dict["$DOCOMPUTE$"] = self.compute_prelude() + [f"    {self.template_call()};"]

    def generate_params(self, model, path):
        self.code_gen_dict["$PARAMS$"] = self.param_lines(model)

    def top_text(self, model, var):
        """The C++ top function of this node (``var``: "ipgen" or "cppsim", named in a comment)."""
        self.code_gen_dict.clear()
        self.generate_params(model, None)
        self.global_includes()
        self.defines(var)
        self.blackboxfunction()
        self.pragmas()
        self.docompute()
        mapping = {k: "\n".join(v) for k, v in self.code_gen_dict.items()}
        mapping.update({"$AP_INT_MAX_W$": self.get_ap_int_max_w(), "$NAME$": self.onnx_node.name,
                        "$OPTYPE$": self.onnx_node.op_type})
        self.code_gen_dict.clear()
        return render_template(HERE / "stream_top.cpp.tpl", mapping)

    # --- vendor path: C++ + tcl for Vitis HLS --------------------------------------------------------------------
    def code_generation_ipgen(self, model, fpgapart, clk):
        node = self.onnx_node
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        code_dir.mkdir(parents=True, exist_ok=True)
        (code_dir / f"top_{node.name}.cpp").write_text(self.top_text(model, "ipgen"))
        tcl = render_template(HERE / "hls_syn.tcl.tpl", {
            "$NAME$": node.name, "$OPTYPE$": node.op_type, "$HWSRCDIR$": code_dir, "$MACDIR$": hls_include_dir(),
            "$HLSDIR$": HERE, "$FPGAPART$": fpgapart, "$CLKPERIOD$": clk,
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
        (code_dir / f"top_{node.name}.cpp").write_text(self.top_text(model, "cppsim"))
        two = self.n_input_streams() == 2
        main = render_template(HERE / "cppsim_main.cpp.tpl", {
            "$NAME$": node.name, "$IW$": self.get_instream_width(0), "$OW$": self.get_outstream_width(),
            "$IN1_DECL$": (f'    hls::stream<ap_uint<{self.get_instream_width(1)}> > in1_V("in1_V");\n'
                           '    read_hex("in1.hex", in1_V);') if two else "",
            "$CALL_ARGS$": "in0_V, in1_V, out0_V" if two else "in0_V, out0_V",
            "$IN1_CHECK$": ('    if (!in1_V.empty()) { std::cerr << "in1 words left over\\n"; return 1; }'
                            if two else ""),
        })
        (code_dir / "execute_node.cpp").write_text(main)

    def compile_singlenode_code(self):
        code_dir = Path(self.get_nodeattr("code_gen_dir_cppsim"))
        exe = code_dir / "node_model"
        cmd = ["g++", "-std=c++14", "-O1", f"-I{ap_types_include_dir()}", f"-I{hls_include_dir()}", f"-I{HERE}",
               f"-I{code_dir}", str(code_dir / "execute_node.cpp"), "-o", str(exe)]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode:
            raise MinifinnError(f"{self.onnx_node.name}: cppsim compilation failed:\n{run.stderr[-3000:]}")
        self.set_nodeattr("executable_path", str(exe))

    def run_cppsim(self, context):
        """Stream the node's inputs from ``context`` through the compiled cppsim model; returns the output values in
        ``get_normal_output_shape``."""
        exe = self.get_nodeattr("executable_path")
        if not exe or not Path(exe).is_file():
            raise MinifinnError(f"{self.onnx_node.name}: no cppsim executable; run PrepareCppSim + CompileCppSim")
        code_dir = Path(self.get_nodeattr("code_gen_dir_cppsim"))
        for (words, width), name in zip(self.input_words(context), ("in.hex", "in1.hex")):
            write_hex(code_dir / name, words, width)
        run = subprocess.run([exe], cwd=code_dir, capture_output=True, text=True)
        if run.returncode:
            raise MinifinnError(f"{self.onnx_node.name}: cppsim failed: {run.stderr[-1000:]}")
        data = [int(ln, 16) for ln in (code_dir / "out.txt").read_text().split()]
        if len(data) != self.get_number_output_values():
            raise MinifinnError(f"{self.onnx_node.name}: cppsim produced {len(data)} of "
                                f"{self.get_number_output_values()} output words")
        return np.asarray(self.decode_output(data)).reshape(self.get_normal_output_shape())

    def execute_node(self, context, graph):
        """cppsim in exec_mode "cppsim", else the op's Python model (the ``execute_node`` of the op class, which
        follows FINN's HLSBackend in the method resolution order); rtlsim of an HLS node needs Vitis HLS's Verilog
        and is refused with the alternatives named."""
        mode = self.get_nodeattr("exec_mode")
        node = self.onnx_node
        if mode == "cppsim":
            self.store_output(context, self.run_cppsim(context))
        elif mode == "rtlsim":
            raise MinifinnError(f"{node.name}: rtlsim of an HLS node needs Vitis HLS to produce Verilog; use cppsim "
                                "(exec_mode='cppsim'), the _rtl variant (preferred_impl_style='rtl'), or the Python "
                                "model")
        else:
            super(HLSBackend, self).execute_node(context, graph)
