"""Weights off chip: MinifloatMVAU mem_mode "external" (Python == cppsim == rtlsim with the weights on in1, FINN's
external weight stream), the board's memory bandwidth in the folding and the reports, and which nodes the compiler
streams (weights_off_chip)."""

import shutil

import numpy as np
import pytest
from onnx import helper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp

import custom_ops  # noqa: F401  (registers the ops into FINN's registries)
from compiler.errors import UnsupportedNodeError
from compiler.numerics import IntFormat, MinifloatFormat
from custom_ops.codegen import codes_of
from custom_ops.examples import random_mvau_model
from finn.transformation.fpgadataflow.compile_cppsim import CompileCppSim
from finn.transformation.fpgadataflow.insert_iodma import InsertIODMA
from finn.transformation.fpgadataflow.prepare_cppsim import PrepareCppSim
from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

F = MinifloatFormat
PART = "xc7z020clg400-1"
needs_sim = pytest.mark.skipif(shutil.which("iverilog") is None or shutil.which("g++") is None,
                               reason="needs g++ and iverilog (apt-get install g++ iverilog)")


def external_model(fa, fw, fo, mw, mh, pe, simd, no_act, n_vec=2, seed=0, suffix=""):
    """One MinifloatMVAU (``suffix`` "" / "_hls" / "_rtl") with mem_mode "external"; returns (model, x)."""
    model, x = random_mvau_model(fa, fw, fo, mw, mh, pe, simd, no_act, n_vec=n_vec, seed=seed,
                                 domain_suffix=suffix.replace("_", "."))
    node = model.graph.node[0]
    node.op_type += suffix
    getCustomOp(node).set_nodeattr("mem_mode", "external")
    return model, x


def _run(model, x, mode):
    if mode == "cppsim":
        model = model.transform(PrepareCppSim()).transform(CompileCppSim())
    elif mode == "rtlsim":
        model = model.transform(PrepareIP(PART, 10.0)).transform(PrepareRTLSim())
    if mode:
        model = model.transform(SetExecMode(mode))
    return np.asarray(execute_onnx(model, {"x": x})["y"])


def test_weight_stream_is_finns_external_mode():
    """in1 width, folded shape and words per frame equal FINN's MVAU in mem_mode "external"; the words are what
    FINN's InsertIODMA puts into the weight DMA's memory (``get_mem_init``, packed as FINN packs it), once per input
    vector; no weight memory on chip, the traffic per frame is the matrix once per vector."""
    fa, fw = F(3, 2), F(2, 3)
    model, _ = external_model(fa, fw, fa, 12, 8, 4, 3, 1, n_vec=5)
    inst = getCustomOp(model.graph.node[0])
    finn = getCustomOp(helper.make_node(
        "MVAU", ["x", "W"], ["y"], domain="finn.custom_op.fpgadataflow", backend="fpgadataflow", MW=12, MH=8, PE=4,
        SIMD=3, inputDataType="INT8", weightDataType=f"UINT{fw.bits}", outputDataType="INT32", noActivation=1,
        mem_mode="external", numInputVectors=[5]))
    assert inst.get_instream_width(1) == finn.get_instream_width(1) == 4 * 3 * fw.bits
    assert inst.get_folded_input_shape(1) == finn.get_folded_input_shape(1) == (5, 2 * 4, 12)
    assert inst.get_number_input_values(1) == 5 * 2 * 4
    w = model.get_initializer("W")
    mem = InsertIODMA.get_mem_init(None, codes_of(w, fw).astype(np.float32), 4, 3)  # FINN's weight DMA memory
    finn_words = [int(sum(int(v) << (fw.bits * (11 - k)) for k, v in enumerate(row))) for row in mem]
    assert inst.matrix_words(w) == finn_words
    assert inst.external_weight_words(w, 5) == finn_words * 5
    assert [n for n, _ in inst.get_verilog_top_module_intf_names()["s_axis"]] == ["in0_V", "in1_V"]
    assert inst.weight_memory_bits() == 0 and inst.bram_estimation() == 0 and inst.uram_estimation() == 0
    assert inst.external_weight_bits() == 5 * 12 * 8 * fw.bits
    assert inst.get_op_and_param_counts()[f"param_weight_{fw.name}"] == 12 * 8
    inst.set_nodeattr("ram_style", "auto")
    assert {tuple(sorted(f)) for f in inst.folding_space()} == {("PE", "SIMD", "use_dsp")}  # no ROM to place


def test_external_weights_need_static_weights_of_an_mvau():
    model, _ = external_model(F(3, 2), F(3, 2), F(3, 2), 8, 4, 2, 2, 1)
    inst = getCustomOp(model.graph.node[0])
    inst.set_nodeattr("dynamic_input", 1)
    with pytest.raises(UnsupportedNodeError, match="mem_mode 'external' needs static weights"):
        inst.get_instream_width(1)
    vvau = getCustomOp(helper.make_node("MinifloatVVAU", ["x", "W"], ["y"], domain="finn.custom_op.fpgadataflow",
                                        MW=9, MH=4, inputDataType="INT4", weightDataType="INT4",
                                        outputDataType="INT16", noActivation=1))
    assert not vvau.external_weights_capable()
    with pytest.raises(UnsupportedNodeError, match="static weights"):
        vvau.set_external_weights(True)


def _random_case(rng, weight_kind):
    """A random case with minifloat or integer weights, a random folding and 1-3 input vectors."""
    if weight_kind == "int":
        fw = IntFormat(int(rng.integers(3, 9)))
    else:
        bits = int(rng.integers(4, 9))
        e = int(rng.integers(2, bits - 1))
        fw = F(e, bits - 1 - e)
    fa = F(3, 2) if rng.random() < 0.5 else IntFormat(4)
    mw, mh = int(rng.choice([6, 8, 12, 16])), int(rng.choice([4, 6, 8]))
    pe = int(rng.choice([d for d in range(1, mh + 1) if mh % d == 0]))
    simd = int(rng.choice([d for d in range(1, mw + 1) if mw % d == 0]))
    return fa, fw, fa, mw, mh, pe, simd, int(rng.random() < 0.5), int(rng.integers(1, 4))


CASES = ([(F(4, 3), F(4, 3), F(4, 3), 16, 8, 2, 4, 0, 3), (IntFormat(4), IntFormat(4), IntFormat(4), 12, 6, 3, 2, 1, 2)]
         + [_random_case(np.random.default_rng(seed), kind) for seed, kind in ((1, "fp"), (2, "int"))])


def _id(c):
    return f"{c[0].name}x{c[1].name}_{c[3]}x{c[4]}_pe{c[5]}_simd{c[6]}_noact{c[7]}_vec{c[8]}"


@needs_sim
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_external_weights_cppsim_and_rtlsim_bit_exact(case):
    """The weights stream on in1 (the testbenches feed the matrix once per vector, with random stalls on every
    stream in rtlsim); Python (W from the initializer) == cppsim == rtlsim, bit for bit."""
    fa, fw, fo, mw, mh, pe, simd, no_act, n_vec = case
    out = {}
    for suffix, mode in (("", None), ("_hls", "cppsim"), ("_rtl", "rtlsim")):
        model, x = external_model(fa, fw, fo, mw, mh, pe, simd, no_act, n_vec=n_vec, seed=mw + mh, suffix=suffix)
        out[mode] = _run(model, x, mode)
    for mode in ("cppsim", "rtlsim"):
        assert out[mode].shape == out[None].shape
        assert np.array_equal(out[mode].astype(object), out[None].astype(object)), mode


@needs_sim
def test_external_rtlsim_cycles_are_the_embedded_ones():
    """At full rate on every stream, the external-weights node takes the embedded node's cycles (one weight word per
    step) plus a few cycles of latency; the HLS top reads the weights from in1_V and has no weight table."""
    model, x = external_model(F(3, 2), F(2, 1), F(3, 2), 12, 8, 2, 3, 1, n_vec=3)
    inst = getCustomOp(model.graph.node[0])
    want = inst.execute_python(x, model.get_initializer("W"))
    inst.set_nodeattr("preferred_impl_style", "rtl")
    model = model.transform(SpecializeLayers(PART)).transform(PrepareIP(PART, 10.0)).transform(PrepareRTLSim())
    rtl = getCustomOp(model.graph.node[0])
    exp = rtl.get_exp_cycles()
    assert exp == 3 * 4 * 4
    got = rtl.run_rtlsim({"x": x, "W": model.get_initializer("W")}, gaps=False)
    assert np.array_equal(got.astype(object), want.astype(object))
    assert exp <= rtl.get_nodeattr("cycles_rtlsim") <= exp + 4
    hls_model, _ = external_model(F(3, 2), F(2, 1), F(3, 2), 12, 8, 2, 3, 1, n_vec=3, suffix="_hls")
    hls = getCustomOp(hls_model.graph.node[0])
    top = hls.top_text(hls_model, "ipgen")
    assert "minifloat_mvau_ext<" in top and f"hls::stream<ap_uint<{2 * 3 * F(2, 1).bits}> > &in1_V" in top
    assert "weights[" not in top and "BIND_STORAGE" not in top


# --- the compiler: which weights go off chip, the memory's bound --------------------------------------------------
def _specialized(*layers, board_part=PART):
    """A chain of rtl MinifloatMVAUs ((MW, MH, input vectors) each, E4M3 weights, accumulator outputs) from "x"."""
    from onnx import TensorProto
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.general import GiveUniqueNodeNames
    from qonnx.util.basic import qonnx_make_model

    f, rng = F(4, 3), np.random.default_rng(0)
    nodes, vis, prev = [], [], "x"
    for i, (mw, mh, vecs) in enumerate(layers):
        out = "y" if i == len(layers) - 1 else f"t{i}"
        nodes.append(helper.make_node(
            "MinifloatMVAU_rtl", [prev, f"W{i}"], [out], domain="finn.custom_op.fpgadataflow.rtl",
            backend="fpgadataflow", MW=mw, MH=mh, PE=1, SIMD=1, inputDataType=f.qonnx_name,
            weightDataType=f.qonnx_name,
            accDataType="INT40", outputDataType="INT40", noActivation=1, numInputVectors=[vecs]))
        vis.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, [vecs, mh]))
        prev = out
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                              [layers[0][2], layers[0][0]])],
                              [vis[-1]], value_info=vis[:-1])
    model = ModelWrapper(qonnx_make_model(graph))
    for i, (mw, mh, _) in enumerate(layers):
        model.set_initializer(f"W{i}", f.values()[rng.integers(0, len(f.values()), size=(mw, mh))].astype(np.float32))
    return model.transform(GiveUniqueNodeNames())


def _fold(model, board, **kw):
    from passes.resource_folding import SetFoldingResourceAware

    fold = SetFoldingResourceAware(board.resources, 10.0, fpgapart=board.part, board_name=board.name,
                                   memory_GBps=board.memory_GBps, memory=board.memory, **kw)
    return model.transform(fold), fold.result


def test_big_matrix_goes_off_chip_with_a_memory_bound_estimate(tmp_path):
    """A 2048 x 2048 E4M3 matrix (33.5 Mbit) does not fit the Pynq-Z2's 280 BRAM_18K: under "auto" it streams from
    the DDR3 (2.1 GB/s = 168 bits per 10 ns cycle), so a frame takes ceil(33,554,432 / 168) = 199,729 cycles:
    500.7 FPS, named as the bottleneck in the folding record and the reports; a 64 x 64 matrix stays on chip."""
    import json

    from compiler.boards import get_board
    from compiler.reports import write_estimate_reports
    from passes.external_weights import SetWeightsOffChip, weights_off_chip_record

    board = get_board("Pynq-Z2")
    assert board.memory_GBps == 2.1
    model = _specialized((2048, 2048, 1)).transform(SetWeightsOffChip(board, "auto"))
    inst = getCustomOp(model.graph.node[0])
    assert inst.get_nodeattr("mem_mode") == "external"
    assert weights_off_chip_record(model)["external"] == {inst.onnx_node.name: 2048 * 2048 * 8}
    model, result = _fold(model, board)
    cycles = -(-2048 * 2048 * 8 // 168)
    assert cycles == 199729 and result["frame_cycles"] == cycles
    assert result["max_cycles"] <= cycles < 2 * result["max_cycles"]  # folded no faster than the memory needs
    assert result["estimated_fps"] == pytest.approx(1e9 / (10 * 199729)) == pytest.approx(500.68, abs=0.01)
    assert result["bottleneck"] == "external weights: 4.19 MB/frame at 2.1 GB/s (DDR3-1050 x16)"
    assert result["total"]["BRAM_18K"] == 0
    model, paths = write_estimate_reports(model, tmp_path, board, 10.0, plot=False)
    perf = json.loads(paths["estimate_network_performance.json"].read_text())
    assert perf["estimated_throughput_fps"] == pytest.approx(500.68, abs=0.01)
    assert perf["bottleneck"] == result["bottleneck"] and perf["external_weights"]["cycles_per_frame"] == cycles
    summary = paths["summary.md"].read_text()
    assert "500.7 FPS** (bound by the external weights: 4.19 MB/frame at 2.1 GB/s" in summary
    assert "| e4m3 (off chip) |" in summary

    small = _specialized((64, 64, 1)).transform(SetWeightsOffChip(board, "auto"))
    assert getCustomOp(small.graph.node[0]).get_nodeattr("mem_mode") == "internal_embedded"
    small, result = _fold(small, board)
    assert result["memory"] is None and result["bottleneck"] == small.graph.node[0].name


def test_nodes_share_the_bandwidth_and_auto_streams_the_cheapest_traffic_first():
    """Two streaming nodes share the memory: the bound is their summed bits per frame; "auto" streams the matrix
    read fewest times per frame first (1 vector before 16), among equals the largest; "always" / "never"."""
    from compiler.boards import get_board
    from passes.external_weights import SetWeightsOffChip, memory_bound

    board = get_board("Pynq-Z2")
    layers = ((1024, 1024, 16), (1024, 1024, 1), (1024, 512, 1), (512, 64, 1))
    model = _specialized(*layers).transform(SetWeightsOffChip(board, "auto"))
    modes = [getCustomOp(n).get_nodeattr("mem_mode") for n in model.graph.node]
    # 224 usable BRAM_18K: 1024x1024 alone needs 456 at best, 1024x512 228, 512x64 (at 2K x 9) 16
    assert modes == ["external", "external", "external", "internal_embedded"]
    mem = memory_bound(model, 2.1, 10.0)
    bits = 8 * (16 * 1024 * 1024 + 1024 * 1024 + 1024 * 512)
    assert mem["bits_per_frame"] == bits and mem["cycles_per_frame"] == -(-bits // 168)
    assert mem["nodes"][model.graph.node[0].name]["share"] == pytest.approx(16 / 17.5)
    always = _specialized(*layers).transform(SetWeightsOffChip(board, "always"))
    assert all(getCustomOp(n).get_nodeattr("mem_mode") == "external" for n in always.graph.node)
    never = always.transform(SetWeightsOffChip(board, "never"))
    assert all(getCustomOp(n).get_nodeattr("mem_mode") == "internal_embedded" for n in never.graph.node)
    assert memory_bound(never, 2.1, 10.0) is None


def test_memory_bound_refusals():
    """A target beyond the memory's frame rate, a board without a bandwidth figure and a bad mode or config value
    are clear errors."""
    from compiler.boards import get_board
    from compiler.config import BuildConfig
    from compiler.errors import ConfigError
    from passes.external_weights import ExternalMemoryError, SetWeightsOffChip
    from passes.resource_folding import FoldingTargetUnreachableError

    board = get_board("Pynq-Z2")
    model = _specialized((1024, 1024, 1)).transform(SetWeightsOffChip(board, "always"))
    with pytest.raises(FoldingTargetUnreachableError, match=r"external weights: 1.05 MB/frame at 2.1 GB/s .* take "
                                                            r"49,933 cycles per frame .* at most 2002.7 FPS"):
        _fold(model, board, target_fps=3000)
    with pytest.raises(ExternalMemoryError, match="ZCU102 has no external memory bandwidth figure"):
        _specialized((64, 64, 1)).transform(SetWeightsOffChip(get_board("ZCU102"), "always"))
    # "auto" on a board without a figure keeps even a matrix that does not fit (456 of 345 usable BRAM_18K) on chip,
    # for the folding to report
    ultra96 = _specialized((1024, 1024, 1)).transform(SetWeightsOffChip(get_board("Ultra96-V2"), "auto"))
    assert getCustomOp(ultra96.graph.node[0]).get_nodeattr("mem_mode") == "internal_embedded"
    with pytest.raises(ExternalMemoryError, match="not one of"):
        SetWeightsOffChip(board, "sometimes")
    with pytest.raises(ConfigError, match=r"weights_off_chip 'sometimes' is not one of \('auto', 'never', 'always'\)"):
        BuildConfig(weights_off_chip="sometimes")


# --- stitched simulation: the weight stream fed from "external memory" ---------------------------------------------
def _two_layer_model(vecs=3):
    """x (E3M2) -> MVAU 1 (E2M1 weights, thresholds to E3M2, mem_mode "external") -> MVAU 2 (INT4 weights, embedded,
    accumulators out), both rtl, 2 x 2 and 3 x 1 folded; returns (model, x)."""
    from onnx import TensorProto
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    fa = F(3, 2)
    first, x = random_mvau_model(fa, F(2, 1), fa, 8, 6, 2, 2, 0, n_vec=vecs, seed=4, domain_suffix=".rtl")
    second, _ = random_mvau_model(fa, IntFormat(4), fa, 6, 3, 3, 1, 1, n_vec=vecs, seed=5, domain_suffix=".rtl")
    n1, n2 = first.graph.node[0], second.graph.node[0]
    n1.output[0], n1.name = "h", "first"
    n2.input[0], n2.input[1], n2.name = "h", "W2", "second"
    for n in (n1, n2):
        n.op_type = "MinifloatMVAU_rtl"
    graph = helper.make_graph([n1, n2], "two", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [vecs, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [vecs, 3])],
                              value_info=[helper.make_tensor_value_info("h", TensorProto.FLOAT, [vecs, 6])])
    model = ModelWrapper(qonnx_make_model(graph))
    for name in ("W", "T"):
        model.set_initializer(name, first.get_initializer(name))
    model.set_initializer("W2", second.get_initializer("W"))
    model.set_tensor_datatype("x", fa.datatype)
    model.set_tensor_datatype("h", fa.datatype)
    model.set_tensor_datatype("W", F(2, 1).datatype)
    model.set_tensor_datatype("W2", IntFormat(4).datatype)
    model.set_tensor_datatype("y", getCustomOp(model.graph.node[1]).get_output_datatype())
    getCustomOp(model.graph.node[0]).set_nodeattr("mem_mode", "external")
    return model, x


@needs_sim
def test_stitched_simulation_feeds_the_weight_stream_and_sizes_its_fifo(tmp_path):
    """The stitched partition: the external node's in1 fed by a ROM source (FINN's wrap-mode weight DMA), the
    matrix again for every vector of every frame; 3 frames == Python bit for bit, FIFO sizing gives the weight edge
    a shallow FIFO (not a join) in the node's inFIFODepths[1]."""
    from compiler.fifo_sizing import size_fifos
    from compiler.stitched_sim import memory_sources, run_stitched

    model, _ = _two_layer_model()
    rng = np.random.default_rng(9)
    vals = F(3, 2).values()
    frames = [vals[rng.integers(0, len(vals), size=(3, 8))].astype(np.float32) for _ in range(3)]
    want = [execute_onnx(model, {"x": f})["y"] for f in frames]
    model = model.transform(PrepareIP(PART, 10.0))
    assert list(memory_sources(model)) == ["W"] and len(memory_sources(model)["W"][0]) == 3 * 4
    res = run_stitched(model, frames, tmp_path / "sim", gaps=True)
    for got, ref in zip(res["outputs"], want):
        assert np.array_equal(np.asarray(got).astype(object), np.asarray(ref).astype(object))
    assert "W -> first.in1" in res["edges"].values()
    model, record = size_fifos(model, frames, tmp_path / "fifo")
    first = getCustomOp(model.graph.node[0])
    assert record["method"] == "shallow except joins" and first.get_nodeattr("inFIFODepths") == [2, 2]


# --- vendor flow and driver: FINN's weight DMA, the stitched IP's weight stream, the deployed weight files ----------
def _zynq_parent(model):
    """FINN's ZynqBuild partitioning of ``model`` (its prep transformations, offline) with the instance names its
    MakeZYNQProject gives: partitions without a producer idma0, idma1, ... in parent order, without consumers
    odma0, ..."""
    from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames

    from finn.transformation.fpgadataflow.create_dataflow_partition import CreateDataflowPartition
    from finn.transformation.fpgadataflow.floorplan import Floorplan
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC

    for t in (InsertIODMA(64), InsertDWC(), SpecializeLayers(PART), Floorplan(), CreateDataflowPartition()):
        model = model.transform(t).transform(GiveUniqueNodeNames()).transform(GiveReadableTensorNames())
    n_in = n_out = 0
    for sdp in model.graph.node:
        if not sdp.input or model.find_producer(sdp.input[0]) is None:
            getCustomOp(sdp).set_nodeattr("instance_name", f"idma{n_in}")
            n_in += 1
        elif not model.find_consumers(sdp.output[0]):
            getCustomOp(sdp).set_nodeattr("instance_name", f"odma{n_out}")
            n_out += 1
    return model


def test_weight_dma_is_finns_and_the_driver_deploys_the_weights(tmp_path):
    """InsertExternalWeightDMA gives each external layer FINN's wrap-mode IODMA (its buffer: FINN's layout of the
    in1 words); FINN's own partitioning (ExternalizeParams, CreateDataflowPartition) takes it, and the DMA names and
    weight bytes the driver predicts from the dataflow model are those of the partitioned model; make_driver writes
    runtime_weights/<dma>.npy and starts each DMA once per input vector."""
    import json

    from qonnx.core.datatype import DataType

    from compiler.driver import io_shape_dict, make_driver
    from compiler.weight_dma import InsertExternalWeightDMA, external_weight_entries
    from finn.util.data_packing import to_external_tensor

    model, _ = _two_layer_model()
    getCustomOp(model.graph.node[1]).set_nodeattr("mem_mode", "external")  # both layers: the DMA order matters
    plain = io_shape_dict(model)
    assert plain["idma_names"] == ["idma2"] and plain["number_of_external_weights"] == 2
    assert [(w["dma"], w["node"], w["reps_per_frame"]) for w in plain["external_weights"]] == \
        [("idma1", "first", 3), ("idma0", "second", 3)]
    with_dma = model.transform(InsertExternalWeightDMA(64))
    dmas = [n for n in with_dma.graph.node if n.op_type == "IODMA_hls"]
    first = getCustomOp(model.graph.node[0])
    dma = getCustomOp(dmas[0])
    assert [dma.get_nodeattr(a) for a in ("burstMode", "direction", "dataType", "NumChannels", "streamWidth")] == \
        ["wrap", "in", "UINT8", 2, 16]
    assert dma.get_nodeattr("numInputVectors") == [3 * 4]  # NF * SF words of PE x SIMD = 2 x 2 E2M1 codes
    assert with_dma.get_initializer(dmas[0].input[0]).shape == (12, 2)
    assert with_dma.find_consumer(dmas[0].output[0]).name == "first"
    w = model.get_initializer("W")
    words = first.matrix_words(w)
    data = external_weight_entries(model)[0]["data"]
    assert [int.from_bytes(bytes(r), "little") for r in data.reshape(12, 2)] == words
    # 16-bit words: the bytes FINN's driver makes of FINN's own weight DMA memory (get_mem_init of the codes)
    finn_mem = InsertIODMA.get_mem_init(None, codes_of(w, F(2, 1)).astype(np.float32), 2, 2)
    assert np.array_equal(to_external_tensor(finn_mem, DataType["UINT4"]), data)
    parent = _zynq_parent(with_dma)
    assert io_shape_dict(parent)["idma_names"] == plain["idma_names"]
    predicted = {e["dma"]: e for e in external_weight_entries(model)}
    built = {e["dma"]: e for e in external_weight_entries(parent)}
    assert predicted.keys() == built.keys() == {"idma0", "idma1"}
    for name, entry in built.items():
        renamed = {"first": "MinifloatMVAU_rtl_0", "second": "MinifloatMVAU_rtl_1"}  # ZynqBuild renames the nodes
        assert entry["node"] == renamed[predicted[name]["node"]] and entry["reps_per_frame"] == 3
        assert np.array_equal(entry["data"], predicted[name]["data"])
    ddir = make_driver(model, tmp_path / "driver", "zynq-iodma", 10.0)
    settings = json.loads((ddir / "settings.json").read_text())["driver_information"]
    assert settings["external_weights"] is True
    assert np.array_equal(np.load(ddir / "runtime_weights" / "idma1.npy"), data)
    text = (ddir / "driver.py").read_text()
    assert "dma.write(0x1C, batch_size * reps)" in text and "def load_external_weights" in text


def test_stitched_ip_makes_the_weight_stream_a_top_level_stream(tmp_path):
    """The Vivado stitching script FINN's CreateStitchedIP writes (generated here without Vivado) makes the
    external layer's in1_V a top-level AXI stream, s_axis_1 next to the activations' s_axis_0."""
    from compiler.config import BuildConfig
    from compiler.vendor import stitching_script_without_vivado

    if shutil.which("vivado"):
        pytest.skip("with vivado on PATH the script is not generated offline")
    model, _ = _two_layer_model()
    model = model.transform(PrepareIP(PART, 10.0))
    tcl = stitching_script_without_vivado(model, BuildConfig(output_dir=str(tmp_path / "out")))
    text = tcl.read_text()
    assert "make_bd_intf_pins_external [get_bd_intf_pins first/in1_V]" in text
    assert "set_property name s_axis_1 [get_bd_intf_ports in1_V_0]" in text
    assert "make_bd_intf_pins_external [get_bd_intf_pins second/in1_V]" not in text
