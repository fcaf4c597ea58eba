"""RTLStreamBackend: the Verilog backend of every minifinn streaming op (FINN's RTLBackend interface).

An op names its core (``CORE``: the module, also the file ``<CORE>.v`` next to this module) and whether the MAC
library (``custom_ops/mac/mf_mac.v``) is part of the design (``USES_MAC_LIBRARY``), and supplies only what is its own:

- ``hdl_params(model, code_dir)``: the core's Verilog parameters ``{name: value}`` (a file parameter's value is
  ``verilog_path(path)``), after writing its memory files into ``code_dir``;
- ``hdl_in1(model, code_dir)``: how the core's second operand is fed, when it has one (``in1_stream``,
  ``in1_rom``, ``in1_tied``);
- its stream codec (``custom_ops.stream_codecs``, shared with its HLS backend): ``n_input_streams()``,
  ``input_words(context)``, ``decode_output(words)``.

The base writes the top wrapper ``<node name>_<CORE>`` (``axis_wrapper.v.tpl``) and copies the sources into
``code_gen_dir_ipgen`` (``generate_hdl``, called by FINN's ``PrepareIP``), lists them (``get_rtl_file_list``: read by
the stitched simulation and exported by the vendor flow), adds them to a Vivado block design
(``code_generation_ipi``), and simulates the node (``prepare_rtlsim`` for FINN's ``PrepareRTLSim``, ``run_rtlsim``):
``execute_node`` runs rtlsim in exec_mode "rtlsim", else the op's Python model. The simulator is the node attribute
``rtlsim_backend`` ("verilator", the default, or "icarus"; custom_ops/rtl/simulators.py, which falls back to Icarus
without Verilator): an object with ``prepare(sim_dir, top, rtl_files, n_input_streams)`` and
``run(sim_dir, top, rtl_files, streams, out_width, n_out, gaps, label) -> (output words, cycles)``.
"""

import shutil
from pathlib import Path

import numpy as np

from compiler.errors import MinifinnError
from custom_ops.codegen import render_template, write_hex
from custom_ops.mac import verilog_sources
from custom_ops.rtl.simulators import (
    DEFAULT_RTLSIM_BACKEND,
    RTL_SIMULATORS,
    resolve_rtlsim_backend,
    watchdog_allowance,
)
from custom_ops.stream_codecs import StreamCodec
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

HERE = Path(__file__).resolve().parent

def verilog_path(path):
    """A file path as a Verilog string literal (for ``$readmemh`` parameters)."""
    return f'"{Path(path).as_posix()}"'


class RTLStreamBackend(StreamCodec, RTLBackend):
    CORE = ""
    USES_MAC_LIBRARY = True

    def get_nodeattr_types(self):
        attrs = super().get_nodeattr_types()
        attrs["rtlsim_backend"] = ("s", False, DEFAULT_RTLSIM_BACKEND, set(RTL_SIMULATORS))
        return attrs

    # --- what an op provides ---------------------------------------------------------------------------------------
    def hdl_params(self, model, code_dir):
        raise NotImplementedError(f"{type(self).__name__} must list its Verilog parameters")

    def hdl_in1(self, model, code_dir):
        """The wrapper's in1 fields; the default: the core has no second operand."""
        return {"$IN1_PORTS$": "", "$IN1_SOURCE$": "", "$IN1_CONN$": ""}

    def support_files(self):
        """Further Verilog files of this directory the top wrapper instantiates (besides the core)."""
        return []

    # --- in1 of the top wrapper --------------------------------------------------------------------------------------
    def in1_stream(self):
        """in1 is a stream port of the top (width ``get_instream_width(1)``)."""
        w1 = self.get_instream_width(1)
        return {"$IN1_PORTS$": (f"\n    input  wire [{w1}-1:0] in1_V_TDATA,\n    input  wire            in1_V_TVALID,"
                                "\n    output wire            in1_V_TREADY,"),
                "$IN1_SOURCE$": "",
                "$IN1_CONN$": "\n        .in1_V_TDATA(in1_V_TDATA), .in1_V_TVALID(in1_V_TVALID), "
                              ".in1_V_TREADY(in1_V_TREADY),"}

    def in1_rom(self, width, words, path):
        """in1 is a constant frame of ``words`` streamed over and over from a ROM (``rom_stream.v``); the hex file
        ``path`` is written here."""
        write_hex(path, words, width)
        return {"$IN1_PORTS$": "",
                "$IN1_SOURCE$": (f"\n    wire [{width}-1:0] c_data;\n    wire c_valid, c_ready;\n"
                                 f"    mf_rom_stream #(.WIDTH({width}), .WORDS({len(words)}), "
                                 f".FILE({verilog_path(path)})) operand (\n"
                                 "        .clk(ap_clk), .rst_n(ap_rst_n), .out_data(c_data), .out_valid(c_valid), "
                                 ".out_ready(c_ready)\n    );"),
                "$IN1_CONN$": "\n        .in1_V_TDATA(c_data), .in1_V_TVALID(c_valid), .in1_V_TREADY(c_ready),"}

    def in1_tied(self, width):
        """The core has an in1 this node does not use: no data, never valid."""
        return {"$IN1_PORTS$": "", "$IN1_SOURCE$": "",
                "$IN1_CONN$": f"\n        .in1_V_TDATA({width}'d0), .in1_V_TVALID(1'b0), .in1_V_TREADY(),"}

    # --- FINN's RTLBackend interface ---------------------------------------------------------------------------------
    def top_name(self):
        return f"{self.onnx_node.name}_{self.CORE}"

    def get_verilog_top_module_name(self):
        return self.top_name()

    def _source_names(self):
        mac = [Path(p).name for p in verilog_sources()] if self.USES_MAC_LIBRARY else []
        return mac + [f"{self.CORE}.v"] + list(self.support_files())

    def get_rtl_file_list(self, abspath=False):
        names = self._source_names() + [f"{self.top_name()}.v"]
        if not abspath:
            return names
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        return [str(code_dir / n) for n in names]

    def code_generation_ipi(self):
        cmd = [f"add_files -copy_to [get_property DIRECTORY [current_project]]/{Path(f).name} -norecurse {f}"
               for f in self.get_rtl_file_list(abspath=True)]
        cmd.append(f"create_bd_cell -type module -reference {self.top_name()} {self.onnx_node.name}")
        return cmd

    def generate_hdl(self, model, fpgapart, clk):
        """Memory files, the top wrapper and copies of the sources into ``code_gen_dir_ipgen``; sets FINN's IP
        paths."""
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        code_dir.mkdir(parents=True, exist_ok=True)
        params = [f".{k}({v})" for k, v in self.hdl_params(model, code_dir).items()]
        fields = {"$CORE$": self.CORE, "$TOP$": self.top_name(), "$PARAMS$": ",\n        ".join(params),
                  "$IW$": self.get_instream_width(0), "$OW$": self.get_outstream_width()}
        fields.update(self.hdl_in1(model, code_dir))
        (code_dir / f"{self.top_name()}.v").write_text(render_template(HERE / "axis_wrapper.v.tpl", fields))
        mac = verilog_sources() if self.USES_MAC_LIBRARY else []
        for src in mac + [HERE / f"{self.CORE}.v"] + [HERE / f for f in self.support_files()]:
            shutil.copy(src, code_dir / Path(src).name)
        self.set_nodeattr("ipgen_path", str(code_dir))
        self.set_nodeattr("ip_path", str(code_dir))

    # --- rtlsim ------------------------------------------------------------------------------------------------------
    def rtl_simulator(self):
        return RTL_SIMULATORS[resolve_rtlsim_backend(self.get_nodeattr("rtlsim_backend"))]

    def prepare_rtlsim(self, behav=False):
        code_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        if not (code_dir / f"{self.top_name()}.v").is_file():
            raise MinifinnError(f"{self.onnx_node.name}: no generated Verilog in {code_dir}; run PrepareIP first")
        sim_dir = code_dir / "rtlsim"
        sim_dir.mkdir(exist_ok=True)
        self.rtl_simulator().prepare(sim_dir, self.top_name(), self.get_rtl_file_list(abspath=True),
                                     self.n_input_streams())
        self.set_nodeattr("rtlsim_dir", str(sim_dir))
        self.set_nodeattr("rtlsim_so", str(sim_dir))  # FINN checks this attribute; here: the simulation directory

    def rtlsim_watchdog_add(self, context):
        """The watchdog's allowance beyond 100 cycles per stream word (``watchdog_allowance``): 100,000 cycles plus
        the stall factor times the cycles the op's estimate expects (``get_exp_cycles``, one execution of its normal
        input shape) for each of the frames in ``context``."""
        name = self.onnx_node.input[0]
        frames = max(1, int(np.asarray(context[name]).size) // max(1, int(np.prod(self.get_normal_input_shape()))))
        cycles = int(self.get_exp_cycles())
        return watchdog_allowance(100000, cycles, cycles, frames)

    def run_rtlsim(self, context, gaps=True):
        """Stream the node's inputs from ``context`` through the simulated design; ``gaps`` = random valid gaps on
        every input stream and random backpressure on the output (``False``: full rate, for cycle counts). Sets
        ``cycles_rtlsim``; returns the output values in ``get_normal_output_shape``."""
        sim_dir = Path(self.get_nodeattr("rtlsim_dir") or "")
        if not sim_dir.is_dir():
            raise MinifinnError(f"{self.onnx_node.name}: call PrepareRTLSim (prepare_rtlsim) before rtlsim")
        data, cycles = self.rtl_simulator().run(sim_dir, self.top_name(), self.get_rtl_file_list(abspath=True),
                                                self.input_words(context), self.get_outstream_width(),
                                                self.get_number_output_values(), gaps, self.onnx_node.name,
                                                self.rtlsim_watchdog_add(context))
        self.set_nodeattr("cycles_rtlsim", int(cycles))
        return np.asarray(self.decode_output(data)).reshape(self.get_normal_output_shape())

    def execute_node(self, context, graph):
        """rtlsim in exec_mode "rtlsim", else the op's Python model (the ``execute_node`` of the op class, which
        follows FINN's RTLBackend in the method resolution order)."""
        if self.get_nodeattr("exec_mode") == "rtlsim":
            self.store_output(context, self.run_rtlsim(context))
        else:
            super(RTLBackend, self).execute_node(context, graph)
