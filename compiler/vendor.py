"""Vendor steps: HLS IP generation, stitched IP, bitfile (Zynq / Alveo), driver and deployment package.

Steps follow the runner's ``step(model, cfg) -> model`` convention and FINN's step names and output folders
(``OUTPUT_DIR/stitched_ip``, ``bitfile``, ``driver``, ``deploy``)::

    step_hw_ipgen            FINN's PrepareIP (idempotent) + HLSSynthIP (vitis_hls; nothing to run for RTL layers)
    step_create_stitched_ip  FINN's CreateStitchedIP (vivado)
    step_synthesize_bitfile  FINN's ZynqBuild (Zynq boards: vivado + vitis_hls) or step_prepare_synthesis +
                             VitisBuild (Alveo: vivado + vitis_hls + v++), via finn-plus' own build steps
    step_make_driver         PYNQ/Alveo driver (compiler/driver.py); needs no tool; in the default step list
    step_deployment_package  deploy/ = driver/ + bitfile/

``bitstream_steps()`` is the default list followed by these (use it as ``BuildConfig.steps``).

Without a tool a step needs, it generates everything that needs none -- the HLS C++ / Verilog and per-layer tcl
of every layer (``hw_sources/<layer>/`` with ``manifest.json``), the Vivado stitching script
(``stitched_ip/make_project.tcl``, when every layer's IP exists without vendor tools, i.e. all-RTL designs), the
driver (``driver/``), ``build_config.json`` and ``build_vivado.sh`` -- and raises ``VendorToolMissing`` naming the
missing tools and the command that continues the build on a machine that has them. The runner re-raises it with the
step's name, ``minifinn build`` prints it and exits 2 (no traceback; the traceback goes to build.log).
"""

import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.general import GiveUniqueNodeNames

import custom_ops  # noqa: F401  (registers minifinn's hardware ops into finn-plus' registries)
from compiler.boards import get_board
from compiler.config import BuildConfig
from compiler.driver import host_input_scales, make_driver, platform_for_board
from compiler.errors import MinifinnError
from compiler.finn_env import ensure_finn_offline
from compiler.qonnx_formats import qonnx_datatype
from compiler.steps import DEFAULT_STEPS
from compiler.weight_dma import InsertExternalWeightDMA, expose_external_weight_streams
from finn.builder.build_dataflow_config import DataflowBuildConfig, DataflowOutputType, ShellFlowType
from finn.transformation.fpgadataflow.convert_to_hw.duplicate_streams import InferDuplicateStreamsLayer
from finn.transformation.fpgadataflow.create_stitched_ip import CreateStitchedIP
from finn.transformation.fpgadataflow.hlssynth_ip import HLSSynthIP
from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
from finn.transformation.fpgadataflow.replace_verilog_relpaths import ReplaceVerilogRelPaths
from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
from finn.util.basic import pynq_native_port_width
from finn.util.fpgadataflow import is_hls_node
from finn.util.settings import get_settings

TOOLS = ("vivado", "vitis_hls", "v++")
_VERSION_ARGS = {"vivado": ["-version"], "vitis_hls": ["-version"], "v++": ["--version"]}
VENDOR_STEPS = ("step_insert_stream_plumbing", "step_hw_ipgen", "step_create_stitched_ip", "step_synthesize_bitfile",
                "step_make_driver", "step_deployment_package")
CONTINUE_SCRIPT_TEMPLATE = Path(__file__).resolve().parent / "templates" / "build_vivado.sh"


class VendorToolMissing(MinifinnError):
    """A vendor tool a step needs is not on PATH. ``tools``: the missing tools; ``command``: the shell command that
    continues the build on a machine with them (both also in the message)."""
    def __init__(self, message, tools=(), command=None):
        super().__init__(message)
        self.tools = tuple(tools)
        self.command = command


def _tool_version(path, tool):
    """First line of the tool's version output that names a version (``v2024.2``), else its first line; None when
    the tool prints nothing or does not answer within 60 s."""
    try:
        run = subprocess.run([path, *_VERSION_ARGS.get(tool, ["--version"])], capture_output=True, text=True,
                             timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [ln.strip() for ln in (run.stdout + "\n" + run.stderr).splitlines() if ln.strip()]
    for line in lines:
        if re.search(r"v?\d{4}\.\d", line):
            return line
    return lines[0] if lines else None


def find_vendor_tools(tools=TOOLS):
    """The vendor tools on PATH: ``{tool: {"path": absolute path, "version": version line or None}}``; tools that
    are not on PATH are absent from the dict."""
    found = {}
    for tool in tools:
        path = shutil.which(tool)
        if path is not None:
            found[tool] = {"path": path, "version": _tool_version(path, tool)}
    return found


def bitstream_steps(base=None):
    """``base`` (default: ``compiler.steps.DEFAULT_STEPS``) without the vendor steps, then VENDOR_STEPS in order."""
    base = list(DEFAULT_STEPS if base is None else base)
    return [s for s in base if s not in VENDOR_STEPS] + list(VENDOR_STEPS)


def _part(cfg):
    return cfg.fpga_part or get_board(cfg.board).part


def _is_zynq(cfg):
    return (cfg.shell_flow_type or get_board(cfg.board).shell_flow) == "vivado_zynq"


def tools_for(step, cfg, model=None):
    """The vendor tools ``step`` needs for this config (and model: HLS synthesis only when it has HLS layers)."""
    if step == "step_hw_ipgen":
        return ("vitis_hls",) if model is not None and _hls_nodes(model) else ()
    if step == "step_create_stitched_ip":
        return ("vivado",)
    if step in ("step_synthesize_bitfile", "step_deployment_package"):
        return ("vivado", "vitis_hls") if _is_zynq(cfg) else ("vivado", "vitis_hls", "v++")
    return ()


def _hls_nodes(model):

    return [n for n in model.graph.node if is_hls_node(n)]


def _is_dataflow_layers(model):
    """True for the minifinn dataflow model (HW layers as nodes), False e.g. for FINN's partitioned parent model."""
    return len(model.graph.node) > 0 and all(n.domain.startswith("finn.custom_op.fpgadataflow")
                                             for n in model.graph.node)


def finn_build_config(cfg, outputs):
    """FINN's DataflowBuildConfig for this minifinn config (same output_dir, board, part, clock, flow)."""
    flow = ShellFlowType.VIVADO_ZYNQ if _is_zynq(cfg) else ShellFlowType.VITIS_ALVEO
    return DataflowBuildConfig(output_dir=str(cfg.output_dir), synth_clk_period_ns=cfg.synth_clk_period_ns,
                               board=get_board(cfg.board).name, fpga_part=_part(cfg), shell_flow_type=flow,
                               generate_outputs=[DataflowOutputType[o] for o in outputs])


# --- what can be generated without vendor tools -------------------------------------------------------------------
def export_hw_sources(model, cfg):
    """FINN's PrepareIP (regenerates only missing code directories), then copy every layer's generated sources
    (HLS C++ + Vitis HLS tcl, or Verilog + IPI tcl) to ``OUTPUT_DIR/hw_sources/<layer>/`` and write
    ``hw_sources/manifest.json`` ({layer: {op_type, backend, files, code_gen_dir}}). Returns (model, manifest)."""
    model = model.transform(PrepareIP(_part(cfg), cfg.synth_clk_period_ns))
    root = Path(cfg.output_dir) / "hw_sources"
    root.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for node in model.graph.node:
        src = Path(getCustomOp(node).get_nodeattr("code_gen_dir_ipgen"))
        dst = root / node.name
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("project_*", "*.log", "sim", "xsim.dir"))
        manifest[node.name] = {"op_type": node.op_type, "backend": "hls" if is_hls_node(node) else "rtl",
                               "code_gen_dir": str(src),
                               "files": sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file())}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return model, manifest


def stitching_script_without_vivado(model, cfg):
    """Write ``OUTPUT_DIR/stitched_ip/make_project.tcl``, the Vivado IP-integrator script FINN's CreateStitchedIP
    generates, without running Vivado. Possible when every layer's IP exists without vendor tools (RTL layers, or
    HLS layers whose ipgen_path exists). Returns the tcl path, or a sentence saying why it was not generated.

    CreateStitchedIP writes make_project.tcl into a new ``vivado_stitch_proj_*`` build directory and only then
    looks for ``vivado``; the FileNotFoundError it raises there is the expected end of the call."""
    lacking = [n.name for n in _hls_nodes(model) if not os.path.isdir(getCustomOp(n).get_nodeattr("ipgen_path"))]
    if lacking:
        return f"the stitching script needs the HLS IP of {', '.join(lacking)} (made by vitis_hls in step_hw_ipgen)"
    build_dir = Path(get_settings().finn_build_dir)
    before = set(build_dir.glob("vivado_stitch_proj_*"))
    finn_log = logging.getLogger("finn_logger")
    level = finn_log.level
    finn_log.setLevel(logging.ERROR)  # its advice to insert FIFOs is for the real run, not for this preview
    try:
        CreateStitchedIP(_part(cfg), cfg.synth_clk_period_ns).apply(expose_external_weight_streams(model))
    except FileNotFoundError as err:
        if "vivado" not in str(err):
            raise
    else:
        return "CreateStitchedIP ran (vivado is on PATH)"
    finally:
        finn_log.setLevel(level)
    new = [d for d in set(build_dir.glob("vivado_stitch_proj_*")) - before if (d / "make_project.tcl").is_file()]
    new = [d for d in new if all(n.name in (d / "make_project.tcl").read_text() for n in model.graph.node)]
    if len(new) != 1:
        return f"CreateStitchedIP left {len(new)} matching project directories in {build_dir}"
    out = Path(cfg.output_dir) / "stitched_ip"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(new[0] / "make_project.tcl", out / "make_project.tcl")
    shutil.rmtree(new[0], ignore_errors=True)
    return out / "make_project.tcl"


def write_continue_script(cfg, start_step, missing, model=None):
    """Write ``OUTPUT_DIR/build_config.json`` (this config with output_dir ".", the step list, no start/stop step)
    and ``OUTPUT_DIR/build_vivado.sh`` (from compiler/templates/build_vivado.sh), which -- after checking that the
    tools of every remaining step are on PATH -- runs ``minifinn build intermediate_models/qonnx_input.onnx
    --config build_config.json --start-step <start_step>`` from OUTPUT_DIR. Returns (script path, the minifinn
    command)."""
    out = Path(cfg.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = cfg.to_dict()
    steps = [s for s in (data.get("steps") or []) if isinstance(s, str)]
    if start_step not in steps:
        steps = bitstream_steps(steps or None)
    index = steps.index(start_step)
    if index == 0:
        raise MinifinnError(f"{start_step} cannot be the first step of a build: it continues a dataflow model")
    for key in ("verify_input_npy", "folding_config_file",
                "specialize_layers_config_file"):
        if data.get(key):
            data[key] = str(Path(data[key]).resolve())
    needed = []
    for step in steps[index:]:
        needed += [t for t in tools_for(step, cfg, model) if t not in needed]
    data.update(output_dir=".", steps=steps, start_step=None, stop_step=None)
    BuildConfig.from_dict(data, "continue config").save(out / "build_config.json")
    command = "minifinn build intermediate_models/qonnx_input.onnx --config build_config.json " \
              f"--start-step {start_step}"
    text = CONTINUE_SCRIPT_TEMPLATE.read_text()
    for key, value in (("@@NEEDED@@", " ".join(needed)), ("@@MISSING@@", " and ".join(missing)),
                       ("@@START_STEP@@", start_step), ("@@PREVIOUS_STEP@@", steps[index - 1]),
                       ("@@STEPS_LEFT@@", ", ".join(steps[index:]))):
        text = text.replace(key, value)
    script = out / "build_vivado.sh"
    script.write_text(text)
    script.chmod(0o755)
    return script, command


def _stop(model, cfg, step, needed, missing):
    """Generate what needs no vendor tool, then raise VendorToolMissing naming ``missing`` and the command."""
    out = Path(cfg.output_dir).resolve()
    generated = []
    if _is_dataflow_layers(model):
        model, manifest = export_hw_sources(model, cfg)
        generated.append(f"hw_sources/ ({len(manifest)} layer(s): sources + tcl)")
        if step in ("step_create_stitched_ip", "step_synthesize_bitfile"):
            tcl = stitching_script_without_vivado(model, cfg)
            generated.append("stitched_ip/make_project.tcl" if isinstance(tcl, Path)
                             else f"no stitching script ({tcl})")
        _write_driver(model, cfg)
        generated.append("driver/")
    elif (out / "driver").is_dir():
        generated.append("driver/")
    script, command = write_continue_script(cfg, step, missing, model)
    generated += ["build_config.json", "build_vivado.sh"]
    raise VendorToolMissing(
        f"{' and '.join(missing)} not on PATH, so {step} cannot run here (it needs {', '.join(needed)}). Generated "
        f"without vendor tools in {out}: {', '.join(generated)}. To continue on a machine with "
        f"{', '.join(needed)} on PATH, copy {out} there and run: bash {script}  (= cd {out} && {command})",
        tools=missing, command=f"bash {script}")


def _require(model, cfg, step):
    needed = tools_for(step, cfg, model)
    missing = [t for t in needed if shutil.which(t) is None]
    if missing:
        _stop(model, cfg, step, needed, missing)


def _write_driver(model, cfg):

    parent = Path(cfg.output_dir) / "intermediate_models" / "dataflow_parent.onnx"
    n_inputs = len([t for t in model.graph.input if model.get_initializer(t.name) is None])
    scales = host_input_scales(parent, range(n_inputs)) if parent.is_file() else None
    if scales is not None and len(scales) != n_inputs:
        scales = None
    return make_driver(model, Path(cfg.output_dir) / "driver", platform_for_board(get_board(cfg.board)),
                       cfg.synth_clk_period_ns, scales, model_name=Path(cfg.output_dir).resolve().name)


# --- steps ------------------------------------------------------------------------------------------------------------
def step_insert_stream_plumbing(model, cfg):
    """What FINN's stitched IP needs between the layers, with FINN's own transformations (no vendor tool needed):
    ``InferDuplicateStreamsLayer`` for forks (a residual's skip), ``InsertDWC`` where producer and consumer words
    differ, ``InsertFIFO`` with the depths step_fifo_sizing stored in ``inFIFODepths`` (shallow ones too, as FINN's
    builder does), then SpecializeLayers (FIFOs and width converters in RTL) and PrepareIP for the new nodes; they
    move code bits, so a minifloat datatype on them becomes UINT of the code width (FINN's HLS types have none). In
    the stitched RTL simulation the same roles are played by minifinn's own fork/FIFO/DWC modules."""
    ensure_finn_offline()
    model = model.transform(InferDuplicateStreamsLayer())
    for node in model.get_nodes_by_op_type("DuplicateStreams"):
        # as wide as its producer, so the fork itself needs no width converter
        producer = model.find_producer(node.input[0])
        inst = getCustomOp(node)
        bits = model.get_tensor_datatype(node.input[0]).bitwidth()
        lanes = getCustomOp(producer).get_outstream_width() // bits if producer is not None else 1
        if inst.get_nodeattr("NumChannels") % lanes == 0:
            inst.set_nodeattr("PE", lanes)
    model = model.transform(InsertDWC())
    model = model.transform(InsertFIFO(create_shallow_fifos=True))
    plumbing = ("DuplicateStreams", "StreamingFIFO", "StreamingDataWidthConverter")
    for node in model.graph.node:
        if node.op_type not in plumbing:
            continue
        inst = getCustomOp(node)
        if node.op_type != "DuplicateStreams":
            inst.set_nodeattr("preferred_impl_style", "rtl")
        for attr in ("inputDataType", "dataType"):
            try:
                dt = qonnx_datatype(inst.get_nodeattr(attr))
            except (AttributeError, KeyError):
                continue
            if not dt.is_integer():  # they move code bits; FINN's HLS types have no minifloat
                inst.set_nodeattr(attr, f"UINT{dt.bitwidth()}")
    model = model.transform(SpecializeLayers(_part(cfg))).transform(GiveUniqueNodeNames())
    return model.transform(PrepareIP(_part(cfg), cfg.synth_clk_period_ns))


def step_hw_ipgen(model, cfg):
    """PrepareIP (sources exported to hw_sources/), then FINN's HLSSynthIP + ReplaceVerilogRelPaths for HLS
    layers (needs vitis_hls; an all-RTL design needs no tool here)."""
    ensure_finn_offline()
    _require(model, cfg, "step_hw_ipgen")
    model, _ = export_hw_sources(model, cfg)
    if _hls_nodes(model):

        model = model.transform(HLSSynthIP(_part(cfg))).transform(ReplaceVerilogRelPaths())
    return model


def step_create_stitched_ip(model, cfg):
    """FINN's CreateStitchedIP (needs vivado); the Vivado project is copied to OUTPUT_DIR/stitched_ip. The weight
    streams of layers with weights off chip are top-level AXI streams of the stitched IP (``s_axis_1``, ...:
    compiler/weight_dma.py ``expose_external_weight_streams``); the model itself keeps its weights."""
    ensure_finn_offline()
    _require(model, cfg, "step_create_stitched_ip")

    stitched = expose_external_weight_streams(model).transform(CreateStitchedIP(_part(cfg), cfg.synth_clk_period_ns))
    for prop in stitched.model.metadata_props:
        model.set_metadata_prop(prop.key, prop.value)
    shutil.copytree(model.get_metadata_prop("vivado_stitch_proj"), Path(cfg.output_dir) / "stitched_ip",
                    dirs_exist_ok=True)
    return model


def step_synthesize_bitfile(model, cfg):
    """Bitfile through finn-plus' own build steps: Zynq boards ZynqBuild (IODMAs, block design, bitstream:
    OUTPUT_DIR/bitfile/finn-accel.bit + .hwh), Alveo step_prepare_synthesis + VitisBuild (xclbin). Layers with
    weights off chip get their weight DMA first (``InsertExternalWeightDMA``, AXI-MM width as FINN's InsertIODMA).
    Returns FINN's partitioned model (IODMA partitions), from which step_make_driver reads the DMA names and the
    weight buffers."""
    ensure_finn_offline()
    _require(model, cfg, "step_synthesize_bitfile")
    # lazy: finn.builder's steps read FINN's settings on import, which exist only in a Vivado set-up
    from finn.builder import build_dataflow_steps as finn_steps

    fcfg = finn_build_config(cfg, ["BITFILE"])
    # weights off chip: a wrap-mode IODMA per layer, as FINN's InsertIODMA for its own MVAU (compiler/weight_dma.py)
    width = pynq_native_port_width[get_board(cfg.board).name] if _is_zynq(cfg) else fcfg.vitis_iodma_intf_max_width
    model = model.transform(InsertExternalWeightDMA(width))
    if not _is_zynq(cfg):
        model = finn_steps.step_prepare_synthesis(model, fcfg)
    return finn_steps.step_synthesize_bitfile(model, fcfg)


def step_make_driver(model, cfg):
    """PYNQ/Alveo driver in OUTPUT_DIR/driver (driver.py, minifinn_io.py, settings.json); needs no vendor tool.
    Input scales come from the host quantizer in intermediate_models/dataflow_parent.onnx when present."""
    ensure_finn_offline()
    _write_driver(model, cfg)
    return model


def step_deployment_package(model, cfg):
    """OUTPUT_DIR/deploy/{driver,bitfile}: the driver (generated if step_make_driver did not run) and the bitfile
    of step_synthesize_bitfile. Without a bitfile: VendorToolMissing when the bitfile's tools are missing here,
    else a MinifinnError asking to run step_synthesize_bitfile."""
    ensure_finn_offline()
    out = Path(cfg.output_dir)
    if not (out / "driver" / "driver.py").is_file():
        _write_driver(model, cfg)
    deploy = out / "deploy"
    shutil.copytree(out / "driver", deploy / "driver", dirs_exist_ok=True)
    bitfiles = sorted(p for p in (out / "bitfile").glob("*") if p.suffix in (".bit", ".hwh", ".xclbin")) \
        if (out / "bitfile").is_dir() else []
    if not any(p.suffix in (".bit", ".xclbin") for p in bitfiles):
        needed = tools_for("step_synthesize_bitfile", cfg)
        missing = [t for t in needed if shutil.which(t) is None]
        if missing:
            script, command = write_continue_script(cfg, "step_synthesize_bitfile", missing)
            raise VendorToolMissing(
                f"{' and '.join(missing)} not on PATH and {out / 'bitfile'} holds no bitfile, so "
                f"{deploy} has the driver only. To build the bitfile on a machine with {', '.join(needed)} on "
                f"PATH, copy {out.resolve()} there and run: bash {script}  (= {command})",
                tools=missing, command=f"bash {script}")
        raise MinifinnError(f"{out / 'bitfile'} holds no .bit/.xclbin: run step_synthesize_bitfile before "
                            "step_deployment_package")
    (deploy / "bitfile").mkdir(parents=True, exist_ok=True)
    for path in bitfiles:
        shutil.copy(path, deploy / "bitfile" / path.name)
    return model
