"""The standard minifinn build steps, ``step(model, cfg) -> model`` each, in ``DEFAULT_STEPS`` order.

lower -> convert to hardware -> dataflow partition -> specialize -> folding -> estimate reports -> HW codegen ->
FIFO sizing -> verification -> driver (``step_make_driver`` lives with the vendor steps in compiler/vendor.py, which
needs no tool; the vendor steps that need Vivado follow in ``compiler.vendor.bitstream_steps()``). Every step works on
the model the previous one returned; the QONNX input, the lowered graph and the dataflow parent are kept in
``output_dir/intermediate_models/`` for the verification ladder.
"""

import json
from pathlib import Path

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp

import custom_ops  # noqa: F401  (registers minifinn's hardware ops into finn-plus' registries)
from compiler.batched_exec import DEFAULT_BATCH_SIZE, BatchedGraph
from compiler.boards import get_board
from compiler.build_dir import save_model_atomic
from compiler.errors import ConfigError, MinifinnError, UnmappableNodesError
from compiler.fifo_sizing import size_fifos
from compiler.reports import estimate_reports_step
from compiler.stitched_sim import run_stitched, stitchable
from custom_ops.capabilities import HWOpCapabilities
from custom_ops.pixel_stream import PixelStreamOp
from finn.transformation.fpgadataflow.compile_cppsim import CompileCppSim
from finn.transformation.fpgadataflow.create_dataflow_partition import CreateDataflowPartition
from finn.transformation.fpgadataflow.prepare_cppsim import PrepareCppSim
from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
from finn.transformation.general import ApplyConfig
from finn.util.fpgadataflow import is_hls_node, is_rtl_node
from passes import lower_qonnx
from passes.compare import compare_lowered
from passes.convert_to_hw import ConvertToHardware
from passes.external_weights import SetWeightsOffChip
from passes.lower import canonicalize, check_shapes
from passes.resource_folding import folding_step

#: the default build, in order (names of functions of this module and of compiler/vendor.py)
DEFAULT_STEPS = [
    "step_lower",
    "step_convert_to_hw",
    "step_create_dataflow_partition",
    "step_specialize_layers",
    "step_folding",
    "step_estimate_reports",
    "step_hw_codegen",
    "step_fifo_sizing",
    "step_verify",
    "step_make_driver",
]


def _inter(cfg, name):
    return Path(cfg.output_dir) / "intermediate_models" / name


def fpga_part(cfg):
    return cfg.fpga_part or get_board(cfg.board).part


def step_lower(model, cfg):
    """QONNX -> lowered exact graph (passes.lower_qonnx); keeps a copy of the QONNX input for verification, in the
    canonical form the lowering maps (``passes.lower.canonicalize``: exact, and batch-agnostic where the export's
    attention was not), so the verification runs it in batches and finds every quantizer the lowering records."""
    _inter(cfg, "").mkdir(parents=True, exist_ok=True)
    model = canonicalize(check_shapes(model))
    save_model_atomic(model, _inter(cfg, "qonnx_input.onnx"))
    return lower_qonnx(model)


def step_convert_to_hw(model, cfg):
    """Every compute node of the lowered graph becomes a minifinn hardware op (``passes.convert_to_hw``), or the step
    lists the nodes (name, op type, why) that keep the graph from being one dataflow partition. Per-channel
    requantizers get conversion parameters with ``requant_scale_bits``-bit scale mantissas."""
    return model.transform(ConvertToHardware(cfg.requant_scale_bits))


def step_create_dataflow_partition(model, cfg):
    """FINN's CreateDataflowPartition; the parent (host) model is saved, the dataflow model continues."""
    parent = model.transform(CreateDataflowPartition(partition_model_dir=str(_inter(cfg, "partitions"))))
    sdp = parent.get_nodes_by_op_type("StreamingDataflowPartition")
    if len(sdp) != 1:
        raise UnmappableNodesError(f"expected one dataflow partition, found {len(sdp)}")
    save_model_atomic(parent, _inter(cfg, "dataflow_parent.onnx"))
    return ModelWrapper(getCustomOp(sdp[0]).get_nodeattr("model"))


def step_specialize_layers(model, cfg):
    """FINN's SpecializeLayers: HLS or RTL variant per node (``preferred_impl_style``; RTL by default, which
    simulates without vendor tools). ``specialize_layers_config_file`` (FINN's JSON: node name or "Defaults" ->
    {"preferred_impl_style": "hls" | "rtl"}) is applied first."""
    if cfg.specialize_layers_config_file:
        model = _apply_config_file(model, cfg.specialize_layers_config_file, "specialize_layers_config_file")
    return model.transform(SpecializeLayers(fpga_part(cfg)))


#: weight memories at least this large go to UltraRAM on boards that have it (ram_style "auto" nodes only)
URAM_WEIGHT_BITS = 128 * 1024


def _large_weights_to_uram(model, cfg):
    """On boards with UltraRAM (Alveo, larger Zynq UltraScale+), weight memories of at least ``URAM_WEIGHT_BITS``
    bits (the op's ``weight_memory_bits()``) with ``ram_style = "auto"`` use it (FINN's ``ram_style = "ultra"``): a
    DeiT-sized model's weights do not fit the BRAM of even a U250, while its 1,280 URAMs hold 360 Mbit."""
    if not get_board(cfg.board).resources.get("URAM"):
        return model
    for node in model.graph.node:
        inst = getCustomOp(node)
        if isinstance(inst, HWOpCapabilities) and inst.weight_memory_bits() >= URAM_WEIGHT_BITS and \
                inst.get_nodeattr("ram_style") == "auto":
            inst.set_nodeattr("ram_style", "ultra")
    return model


def _restrict_requant_styles(model, cfg):
    """``requant_style`` other than "auto" leaves the folding that one style for every requantizer that can take
    it (the op's ``requantStyles``)."""
    if cfg.requant_style == "auto":
        return model
    for node in model.graph.node:
        inst = getCustomOp(node)
        if "requantStyles" in inst.get_nodeattr_types():
            inst.set_nodeattr("requantStyles", [cfg.requant_style])
    return model


def _restrict_mac_dsp(model, cfg):
    """``mac_dsp`` ("auto", "lut", "dsp") reaches every MVAU: the ``use_dsp`` values its folding may choose."""
    for node in model.graph.node:
        inst = getCustomOp(node)
        if "mac_dsp" in inst.get_nodeattr_types():
            inst.set_nodeattr("mac_dsp", cfg.mac_dsp)
    return model


def _apply_config_file(model, path, field):
    """FINN's ApplyConfig with a JSON file; a missing or malformed file is a ConfigError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{field}: {path} does not exist")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{field}: {path} is not valid JSON ({err})") from err
    names = {n.name for n in model.graph.node}
    unknown = sorted(k for k in config if k != "Defaults" and k not in names)
    if unknown:
        raise ConfigError(f"{field}: {path} names nodes that are not in the model: {', '.join(unknown[:5])}; "
                          f"nodes: {', '.join(sorted(names)[:8])}{' ...' if len(names) > 8 else ''}")
    return model.transform(ApplyConfig(config))


def step_folding(model, cfg):
    """Resource-aware folding for the board (passes/resource_folding.py ``SetFoldingResourceAware``):
    ``target_fps`` when given, else the fastest folding that fits 80 % of the board. Large weight memories go to
    UltraRAM where the board has it (``_large_weights_to_uram``), then ``weights_off_chip`` decides which weight
    matrices stream from external memory (passes/external_weights.py ``SetWeightsOffChip``; "auto": only when the
    embedded weights would not fit the board's block RAM / UltraRAM). A ``folding_config_file``
    (FINN's JSON: node name -> {"PE": .., "SIMD": ..}) is applied on top, as FINN's step_apply_folding_config
    does; the estimate reports then show whether the result fits."""
    _large_weights_to_uram(model, cfg)
    model = model.transform(SetWeightsOffChip(get_board(cfg.board), cfg.weights_off_chip))
    _restrict_requant_styles(model, cfg)
    _restrict_mac_dsp(model, cfg)
    model = folding_step(model, cfg)
    if cfg.folding_config_file:
        model = _apply_config_file(model, cfg.folding_config_file, "folding_config_file")
    return model


def step_estimate_reports(model, cfg):
    """FINN's estimate reports (same files and shapes as FINN's step_generate_estimate_reports), summary.md and
    resources.png (compiler/reports.py)."""
    return estimate_reports_step(model, cfg)


def step_hw_codegen(model, cfg):
    """HLS C++ + Vitis HLS tcl and RTL Verilog + IPI tcl for every node (FINN's PrepareIP), and cppsim build
    files for HLS nodes (FINN's PrepareCppSim + CompileCppSim with g++)."""
    model = model.transform(PrepareIP(fpga_part(cfg), cfg.synth_clk_period_ns))
    if any(is_hls_node(n) for n in model.graph.node):
        model = model.transform(PrepareCppSim()).transform(CompileCppSim())
    return model


def _verify_inputs(cfg):
    if not cfg.verify_input_npy:
        raise MinifinnError("the verification steps need verify_input_npy (a .npy batch of inputs for the QONNX "
                            "model)")
    return np.load(cfg.verify_input_npy).astype(np.float32)


def _partition_batch(cfg, x):
    """The dataflow partition's inputs (N, ...) for the QONNX inputs ``x`` (N, ...): the host part of the parent graph
    (the nodes before the partition), run batched."""
    parent = ModelWrapper(str(_inter(cfg, "dataflow_parent.onnx")))
    name = parent.get_nodes_by_op_type("StreamingDataflowPartition")[0].input[0]
    return BatchedGraph(parent).run(x, outputs=[name])[name]


def _partition_inputs(cfg, x):
    """The dataflow partition's input for every QONNX input in ``x``: a list of batch-1 arrays."""
    if not len(x):
        return []
    frames = _partition_batch(cfg, x)
    return [frames[i:i + 1] for i in range(len(frames))]


def step_fifo_sizing(model, cfg):
    """FIFO depths from a stitched RTL simulation (``rtlsim_backend``) of the whole partition (compiler/fifo_sizing.py
    ``size_fifos``: high-water marks on ``fifo_sizing_frames`` verification inputs, shallow FIFOs where that keeps
    outputs and frame interval) become the consumers' ``inFIFODepths`` (FINN's InsertFIFO uses them in the vendor
    build); report/fifo_sizing.json. Skipped, with the reason in the
    report, when ``fifo_sizing = "none"`` or a node has no RTL backend (FINN's default depths then apply)."""
    report = Path(cfg.output_dir) / "report"
    report.mkdir(parents=True, exist_ok=True)
    ok, why = stitchable(model)
    if cfg.fifo_sizing == "none" or not ok:
        reason = "fifo_sizing = 'none'" if cfg.fifo_sizing == "none" else why
        (report / "fifo_sizing.json").write_text(json.dumps({"sized": False, "reason": reason}, indent=2) + "\n")
        return model
    _prepare_rtlsim(model, cfg)
    frames = _partition_inputs(cfg, _verify_inputs(cfg)[:cfg.fifo_sizing_frames])
    model, record = size_fifos(model, frames, Path(cfg.output_dir) / "stitched_rtlsim", simulator=cfg.rtlsim_backend)
    out = {"sized": True, "frames": len(frames), "depths": record["depths"], "edges": record["edges"],
           "frame_cycles_deep": record["frame_cycles_deep"], "frame_cycles_sized": record["frame_cycles_sized"],
           "method": record["method"], "simulator": record["simulator"], "high_water_marks": record["high_water_marks"],
           "memory_bits_high_water": record["memory_bits_high_water"],
           "total_depth": int(sum(record["depths"].values())), "memory_bits": record["memory_bits"],
           "bram18_estimate": _fifo_bram18(record)}
    (report / "fifo_sizing.json").write_text(json.dumps(out, indent=2) + "\n")
    return model


def _prepare_rtlsim(model, cfg):
    """FINN's PrepareRTLSim for the RTL nodes only, on the build's ``rtlsim_backend``: an HLS node's rtlsim would
    need Vitis HLS's Verilog, and here HLS nodes are simulated with cppsim."""
    for node in model.graph.node:
        if is_rtl_node(node):
            inst = getCustomOp(node)
            inst.set_nodeattr("rtlsim_backend", cfg.rtlsim_backend)
            inst.prepare_rtlsim()
    return model


def _fifo_bram18(record):
    """BRAM_18K of the sized FIFOs if each deep one (> 256 words, shallower ones go to SRL/LUTRAM as FINN's
    'auto' FIFO style does) is a simple dual-port BRAM of its width x depth."""
    return int(sum(PixelStreamOp.bram18_for(record["widths"][e], d) for e, d in record["depths"].items() if d > 256))


def _hardware_rung(cfg, low, model, x):
    """The lowered graph's outputs ``low`` (N, ...) against the hardware graph's (the dataflow parent running the
    built partition ``model``) on the QONNX inputs ``x``: differing output codes (elements), argmax agreement and
    the largest output difference."""
    parent = ModelWrapper(str(_inter(cfg, "dataflow_parent.onnx")))
    hw = BatchedGraph(parent, partition=model).run(x)
    hw = np.asarray(hw[parent.graph.output[0].name], dtype=np.float64).reshape(len(x), -1)
    low = np.asarray(low, dtype=np.float64).reshape(len(x), -1)
    return {"codes": int(hw.size), "differing_codes": int(np.sum(hw != low)),
            "argmax_agreement": float(np.mean(hw.argmax(1) == low.argmax(1))),
            "max_abs_output_diff": float(np.max(np.abs(hw - low))) if hw.size else 0.0}


def _golden_contexts(model, frames, batch_size=DEFAULT_BATCH_SIZE):
    """Python (golden) execution of the dataflow model on the partition inputs ``frames`` (N, ...), batched
    (``compiler.batched_exec``, ``batch_size`` images per run): yields (image index, its full context as qonnx
    ``execute_onnx`` returns it for that image alone)."""
    graph = BatchedGraph(model)
    for start in range(0, len(frames), batch_size):
        ctx = graph.run(frames[start:start + batch_size], full_context=True)
        for j in range(min(batch_size, len(frames) - start)):
            yield start + j, graph.image_context(ctx, j)


def step_verify(model, cfg):
    """Verification ladder on sample inputs; writes report/verification.json, fails naming the first mismatch.

    1. QONNX golden vs lowered graph (``passes.compare``: differing codes, argmax agreement), and lowered graph vs
       hardware graph (``_hardware_rung``: where requantization by conversion rounds differently from the lowered
       thresholds; reported, not failed: the hardware graph's own integer contract is what rungs 2–3 check);
    2. per node: Python golden vs cppsim (HLS nodes) / rtlsim (RTL nodes, ``rtlsim_backend``), bit for bit;
    3. whole partition as one stitched RTL simulation (``_stitched_rung``) when every node has RTL, else every
       node simulated, chained (``whole_partition``), vs the Python dataflow model.

    The Python side (partition inputs and the golden context of every image) runs batched; the simulations run image
    by image.
    """
    report = Path(cfg.output_dir) / "report"
    report.mkdir(parents=True, exist_ok=True)
    x = _verify_inputs(cfg)
    qonnx = ModelWrapper(str(_inter(cfg, "qonnx_input.onnx")))
    lowered = ModelWrapper(str(_inter(cfg, "step_lower.onnx")))
    result = {"images": int(len(x)), "nodes": {}}
    cmp = compare_lowered(qonnx, lowered, x, batch_size=min(50, len(x)), keep_logits=True)
    result["qonnx_vs_lowered"] = {k: cmp[k] for k in ("differing_codes", "codes", "argmax_agreement",
                                                       "max_abs_output_diff")}
    result["lowered_vs_hardware"] = _hardware_rung(cfg, cmp["logits_lowered"], model, x)
    # dataflow model inputs for every image: the host part of the parent graph up to the partition, batched
    frames = _partition_batch(cfg, x)
    _prepare_rtlsim(model, cfg)
    df_in = model.graph.input[0].name
    df_out = model.graph.output[0].name
    mismatches = []
    golden_out = []
    chained = not stitchable(model)[0]  # the stitched simulation (rung 3) subsumes the chained one
    for i, golden in _golden_contexts(model, frames):
        host = frames[i:i + 1]
        golden_out.append(golden[df_out])
        for node in model.graph.node:
            mode = "cppsim" if is_hls_node(node) else "rtlsim"
            inst = getCustomOp(node)
            inst.set_nodeattr("exec_mode", mode)
            ctx = {t: golden[t] for t in node.input if t in golden}
            ctx[node.output[0]] = np.zeros_like(golden[node.output[0]])
            inst.execute_node(ctx, model.graph)
            ok = np.array_equal(np.asarray(ctx[node.output[0]], dtype=np.float64),
                                np.asarray(golden[node.output[0]], dtype=np.float64))
            entry = result["nodes"].setdefault(node.name, {"mode": mode, "passed": 0, "failed": 0})
            entry["passed" if ok else "failed"] += 1
            if not ok:
                mismatches.append(f"{node.name} ({mode}) on input {i}")
        if not chained:
            continue
        whole = execute_onnx(model, {df_in: host})[df_out]  # every node in its simulation mode, chained
        entry = result.setdefault("whole_partition", {"passed": 0, "failed": 0})
        ok = np.array_equal(np.asarray(whole, dtype=np.float64), np.asarray(golden[df_out], dtype=np.float64))
        entry["passed" if ok else "failed"] += 1
        if not ok:
            mismatches.append(f"whole partition on input {i}")
    _stitched_rung(model, cfg, frames, golden_out, result, mismatches)
    result["passed"] = not mismatches
    (report / "verification.json").write_text(json.dumps(result, indent=2) + "\n")
    if mismatches:
        raise MinifinnError(f"verification failed: {', '.join(mismatches[:5])} (report/verification.json)")
    return model


def _stitched_rung(model, cfg, frames, golden, result, mismatches):
    """4. the whole partition as one stitched RTL simulation (sized FIFOs, forks, width converters) on every
    verification input (``frames`` (N, ...), the partition's inputs), frames back to back, vs the Python dataflow
    model's outputs ``golden`` (one per frame); also the measured cycles per frame."""
    ok, why = stitchable(model)
    if not ok:
        result["stitched_rtlsim"] = {"skipped": why}
        return
    frames = [frames[i:i + 1] for i in range(len(frames))]
    depths = {}
    sizing = Path(cfg.output_dir) / "report" / "fifo_sizing.json"
    if sizing.is_file():
        depths = json.loads(sizing.read_text()).get("depths", {})
    sim = run_stitched(model, frames, Path(cfg.output_dir) / "stitched_rtlsim" / "verify", fifo_depths=depths,
                       gaps=True, simulator=cfg.rtlsim_backend)
    entry = {"passed": 0, "failed": 0, "fifo_depths": "sized" if depths else "deep", "simulator": sim["simulator"],
             "frame_end_cycles": sim["frame_cycles"], "backpressure": "random input gaps and output stalls"}
    for i, (a, b) in enumerate(zip(sim["outputs"], golden)):
        good = np.array_equal(np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel())
        entry["passed" if good else "failed"] += 1
        if not good:
            mismatches.append(f"stitched rtlsim on input {i}")
    result["stitched_rtlsim"] = entry
