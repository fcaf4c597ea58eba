"""The rtlsim back ends: Verilator (compiled once per design, cached) and Icarus give the same output words and the
same cycle counts for every kind of node, == the Python golden model; the cache shares one binary between nodes of
one configuration; Icarus when verilator is missing; the build config's ``rtlsim_backend``."""

import json
import logging
import shutil

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from test_add import add_model
from test_cnn_build import _build
from test_layernorm import _converted
from test_pixel_stream_ops import _random_values, _single_node
from test_reorder import _values, reorder_model
from test_softmax import random_codes, softmax_model
from test_thresholding import threshold_model

import custom_ops  # noqa: F401  (registers the ops into FINN's registries)
from compiler.config import RTLSIM_BACKENDS, BuildConfig
from compiler.errors import ConfigError
from compiler.numerics import IntFormat, MinifloatFormat
from compiler.steps import _golden_contexts, _partition_batch
from compiler.stitched_sim import run_stitched
from custom_ops.examples import random_dynamic_mvau_model, random_mvau_model
from custom_ops.rtl import simulators, verilator_build
from custom_ops.rtl.verilator import node_design
from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

PART = "xc7z020clg400-1"
F = MinifloatFormat
needs_both = pytest.mark.skipif(not verilator_build.available() or shutil.which("iverilog") is None,
                                reason="needs verilator, g++ and iverilog")


def _mvau():
    model, x = random_mvau_model(F(3, 2), F(2, 1), F(3, 2), 12, 6, 3, 3, 0, seed=13)
    return model, {"x": x}


def _mvau_dynamic():  # two input streams (the matrix on in1)
    model, x, w = random_dynamic_mvau_model(F(3, 2), F(3, 2), F(3, 2), [2, 3], 4, 8, 6, 2, 4, 0, seed=8)
    return model, {"x": x, "W": w}


def _thresholding():
    model, acc, _ = threshold_model(IntFormat(4), 6, 3, 9, (4,), (1, -1, 1, 1, -1, -1))
    return model, {"acc": acc}


def _add():  # two input streams
    model, x0, x1, _ = add_model(IntFormat(8), F(4, 3), F(2, 3), (123456, 789), 6, 3, (2, 2))
    return model, {"x0": x0, "x1": x1}


def _softmax():
    return softmax_model(F(3, 2), F(3, 2), 16, 12, 0.054, 0.0194, 12, 12, 4), {"x": random_codes(F(3, 2), 12, 16, 12)}


def _layernorm():
    _, hw, x = _converted((F(3, 2), F(3, 2), 16, 4, 4))
    return hw, {"x": x}


def _reorder():
    fmt, shape = F(3, 2), [1, 4, 16]
    return reorder_model(fmt, shape, [("reshape", [1, 4, 2, 8]), ("transpose", [0, 2, 1, 3])], 8), \
        {"x": _values(fmt, shape, 2)}


def _sliding_window():
    fmt = F(3, 2)
    model = _single_node("MinifloatConvInpGen", [1, 5, 5, 4], [1, 5, 5, 36], fmt.qonnx_name, fmt.qonnx_name,
                         IFMDim=[5, 5], NumChannels=4, SIMD=2, ConvKernelDim=[3, 3], Stride=[1, 1], Dilation=[1, 1],
                         Padding=[1, 1, 1, 1], inputDataType=fmt.qonnx_name, outputDataType=fmt.qonnx_name)
    return model, {"x": _random_values(fmt, (1, 5, 5, 4), 3)}


def _maxpool():
    fmt = IntFormat(5)
    model = _single_node("MinifloatMaxPool", [1, 5, 7, 3], [1, 2, 2, 3], fmt.qonnx_name, fmt.qonnx_name,
                         IFMDim=[5, 7], NumChannels=3, PE=1, PoolDim=[2, 3], inputDataType=fmt.qonnx_name,
                         outputDataType=fmt.qonnx_name)
    return model, {"x": _random_values(fmt, (1, 5, 7, 3), 3)}


NODES = {"mvau": _mvau, "mvau_dynamic": _mvau_dynamic, "thresholding": _thresholding, "add": _add,
         "softmax": _softmax, "layernorm": _layernorm, "reorder": _reorder, "sliding_window": _sliding_window,
         "maxpool": _maxpool}


def _rtlsim(model, inputs, backend):
    """(output, cycles, the simulator that ran) of the model's one node in rtlsim on ``backend``."""
    for node in model.graph.node:
        getCustomOp(node).set_nodeattr("preferred_impl_style", "rtl")
    hw = model.transform(SpecializeLayers(PART)).transform(PrepareIP(PART, 10.0))
    assert hw.graph.node[0].op_type.endswith("_rtl")
    getCustomOp(hw.graph.node[0]).set_nodeattr("rtlsim_backend", backend)
    hw = hw.transform(PrepareRTLSim()).transform(SetExecMode("rtlsim"))
    out = execute_onnx(hw, inputs)[hw.graph.output[0].name]
    inst = getCustomOp(hw.graph.node[0])
    return out, inst.get_nodeattr("cycles_rtlsim"), inst.rtl_simulator().name


@needs_both
@pytest.mark.parametrize("kind", list(NODES))
def test_verilator_equals_icarus_and_python_with_random_stalls(kind):
    """Same output words and the same cycle count under random valid gaps and backpressure: the harness draws
    Icarus's $random sequence in the testbench's order."""
    model, inputs = NODES[kind]()
    golden = execute_onnx(model, inputs)[model.graph.output[0].name]
    runs = {b: _rtlsim(model, inputs, b) for b in ("verilator", "icarus")}
    for backend, (out, cycles, ran) in runs.items():
        assert ran == backend
        assert np.array_equal(np.asarray(out, dtype=object), np.asarray(golden, dtype=object)), backend
        assert cycles > 0
    assert runs["verilator"][1] == runs["icarus"][1]


@pytest.mark.parametrize("backend", ["verilator", "icarus"])
def test_a_slowly_folded_node_is_not_called_deadlocked(backend):
    """A fully serial 256 x 256 MVAU (PE = SIMD = 1) takes 128 cycles per stream word: 8 vectors need 524,288 cycles,
    more than a fixed watchdog of 100 cycles per stream word plus 100,000 (509,600) allows. The node's watchdog adds
    four times the op's expected cycles (``get_exp_cycles``) to the 100,000 instead."""
    if backend == "verilator" and not verilator_build.available() or backend == "icarus" and \
            shutil.which("iverilog") is None:
        pytest.skip(f"needs {backend}")
    n_vec, mw, mh = 8, 256, 256
    model, x = random_mvau_model(F(2, 1), F(2, 1), F(2, 1), mw, mh, 1, 1, 1, n_vec=n_vec, seed=3)
    golden = execute_onnx(model, {"x": x})[model.graph.output[0].name]
    out, cycles, ran = _rtlsim(model, {"x": x}, backend)
    assert ran == backend
    assert np.array_equal(np.asarray(out, dtype=object), np.asarray(golden, dtype=object))
    assert cycles > 100 * (n_vec * mw + n_vec * mh) + 100000  # where the fixed watchdog ended the run


def _mvau_node(tmp_path, name, permute):
    """A prepared MVAU node; ``permute`` reorders the weight rows: other weights, same configuration."""
    model, x = random_mvau_model(F(4, 3), F(3, 2), F(4, 3), 16, 8, 4, 4, 0, seed=5)
    if permute:
        model.set_initializer("W", model.get_initializer("W")[::-1].copy())
    model.graph.node[0].name = name
    getCustomOp(model.graph.node[0]).set_nodeattr("preferred_impl_style", "rtl")
    hw = model.transform(SpecializeLayers(PART)).transform(PrepareIP(PART, 10.0))
    hw = hw.transform(PrepareRTLSim()).transform(SetExecMode("rtlsim"))
    return model, hw, x


@pytest.mark.skipif(not verilator_build.available(), reason="needs verilator and g++")
def test_nodes_of_one_configuration_share_one_cached_binary(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    for runtime in verilator_build.cache_dir().glob("runtime-*"):  # the shared runtime objects, if already built
        shutil.copytree(runtime, cache / runtime.name)
    monkeypatch.setenv(verilator_build.CACHE_ENV, str(cache))
    (m1, hw1, x), (m2, hw2, _) = _mvau_node(tmp_path, "first", False), _mvau_node(tmp_path, "second", True)
    keys = []
    for model, hw in ((m1, hw1), (m2, hw2)):
        inst = getCustomOp(hw.graph.node[0])
        assert inst.rtl_simulator().name == "verilator"
        keys.append(verilator_build.design_key(*node_design(inst.top_name(), inst.get_rtl_file_list(True), 1)))
        got = execute_onnx(hw, {"x": x})["y"]
        assert np.array_equal(got, execute_onnx(model, {"x": x})["y"])  # its own weights, read at run time
    assert keys[0] == keys[1]
    assert not np.array_equal(execute_onnx(m1, {"x": x})["y"], execute_onnx(m2, {"x": x})["y"])
    binaries = [d for d in cache.iterdir() if (d / "sim").is_file()]
    assert [d.name for d in binaries] == [keys[0]]  # one compile for both nodes
    inst = getCustomOp(hw1.graph.node[0])
    binary, seconds = verilator_build.build(*node_design(inst.top_name(), inst.get_rtl_file_list(True), 1))
    assert seconds == 0.0 and binary == binaries[0] / "sim"  # a second build is a cache hit


def test_icarus_when_verilator_is_missing(monkeypatch, caplog):
    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "verilator" else which(name, *a, **k))
    monkeypatch.setattr(simulators, "_fallbacks_logged", set())
    with caplog.at_level(logging.WARNING, logger="minifinn.rtlsim"):
        assert simulators.resolve_rtlsim_backend("verilator") == "icarus"
    assert "verilator (or g++) is not on PATH" in caplog.text
    assert simulators.resolve_rtlsim_backend("icarus") == "icarus"
    if which("iverilog"):
        model, inputs = _thresholding()
        out, cycles, ran = _rtlsim(model, inputs, "verilator")
        assert ran == "icarus" and cycles > 0
        assert np.array_equal(out, execute_onnx(model, inputs)["y"])


def test_config_field_and_the_simulator_registry_agree():
    assert BuildConfig().rtlsim_backend == "verilator"
    assert set(RTLSIM_BACKENDS) == set(simulators.RTL_SIMULATORS)
    assert BuildConfig(rtlsim_backend="icarus").rtlsim_backend == "icarus"
    with pytest.raises(ConfigError, match="rtlsim_backend 'xsim' is not one of"):
        BuildConfig(rtlsim_backend="xsim")
    with pytest.raises(Exception, match="rtlsim back end 'xsim'"):
        simulators.resolve_rtlsim_backend("xsim")


@needs_both
def test_stitched_cnn_on_verilator_equals_icarus_and_python(tmp_path):
    """The CNN partition (residual fork, width converters, the join of the add): Verilator == Icarus == the Python
    dataflow model on every frame, with the same frame end cycles and FIFO high-water marks; FIFO sizing and the
    verification ran on Verilator."""
    _build(tmp_path, images=3)
    build = tmp_path / "build"
    report = json.loads((build / "report" / "verification.json").read_text())
    assert report["stitched_rtlsim"]["simulator"] == "verilator" and report["stitched_rtlsim"]["passed"] == 3
    sizing = json.loads((build / "report" / "fifo_sizing.json").read_text())
    assert sizing["simulator"] == "verilator"
    model = ModelWrapper(str(build / "intermediate_models" / "step_verify.onnx"))
    cfg = BuildConfig(output_dir=str(build), verify_input_npy=str(tmp_path / "x.npy"))
    batch = _partition_batch(cfg, np.load(tmp_path / "x.npy"))
    frames = [batch[i:i + 1] for i in range(len(batch))]
    out_name = model.graph.output[0].name
    golden = [ctx[out_name] for _, ctx in _golden_contexts(model, batch)]
    sims = {b: run_stitched(model, frames, tmp_path / b, fifo_depths=sizing["depths"], gaps=True, simulator=b)
            for b in ("verilator", "icarus")}
    for backend, sim in sims.items():
        assert sim["simulator"] == backend
        for out, want in zip(sim["outputs"], golden):
            assert np.array_equal(np.asarray(out, dtype=np.float64), np.asarray(want, dtype=np.float64)), backend
    for key in ("frame_cycles", "fifo_max"):
        assert sims["verilator"][key] == sims["icarus"][key], key
