"""MinifloatReorder (layout chains between hardware nodes): Python == numpy layout ops == Icarus rtlsim."""

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.util.basic import qonnx_make_model

import custom_ops  # noqa: F401
from compiler.errors import UnsupportedNodeError
from compiler.numerics import IntFormat, MinifloatFormat
from custom_ops.minifloat_reorder import aligned_group

PART = "xc7z020clg400-1"

# (format, input shape, layout ops as ("reshape", shape) / ("transpose", perm), PE)
CASES = [
    (MinifloatFormat(3, 2), [1, 4, 16], [("reshape", [1, 4, 2, 8]), ("transpose", [0, 2, 1, 3])], 8),  # head split
    (MinifloatFormat(4, 3), [1, 4, 2, 8], [("transpose", [0, 2, 3, 1])], 1),  # K^T per head
    (IntFormat(4), [1, 2, 4, 8], [("transpose", [0, 2, 1, 3]), ("reshape", [1, 4, 16])], 4),  # head merge
    (MinifloatFormat(2, 1), [1, 2, 2, 6], [("reshape", [1, 4, 6])], 3),  # patch grid -> tokens: wires
    (IntFormat(12), [1, 3, 5], [("transpose", [0, 2, 1])], 1),  # wide integers (accumulators)
]


def reorder_model(fmt, in_shape, ops, pe):
    x = np.arange(int(np.prod(in_shape))).reshape(in_shape)
    for kind, arg in ops:
        x = x.reshape(arg) if kind == "reshape" else x.transpose(arg)
    index = x.ravel()
    identity = np.array_equal(index, np.arange(index.size))
    dt = fmt.datatype.name if fmt.is_minifloat else f"INT{fmt.bits}"
    node = helper.make_node("MinifloatReorder", ["x"], ["y"], domain="finn.custom_op.fpgadataflow",
                            backend="fpgadataflow", inputShape=in_shape, outputShape=list(x.shape),
                            NumChannels=int(x.shape[-1]) if identity else aligned_group(index), PE=pe,
                            dataType=dt,
                            **({} if identity else {"index": [int(i) for i in index]}))
    graph = helper.make_graph([node], "reorder", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(x.shape))])
    model = ModelWrapper(qonnx_make_model(graph)).transform(GiveUniqueNodeNames())
    model.set_tensor_datatype("x", DataType[dt])
    return model


def _values(fmt, shape, seed):
    rng = np.random.default_rng(seed)
    if fmt.bits > 8:
        return rng.integers(-2 ** (fmt.bits - 1), 2 ** (fmt.bits - 1), size=shape).astype(np.float32)
    return rng.choice(fmt.values(), size=shape).astype(np.float32)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].name}_{'x'.join(map(str, c[1]))}_pe{c[3]}")
def test_reorder_python_equals_numpy_and_rtlsim(case):
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
    from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    fmt, in_shape, ops, pe = case
    model = reorder_model(fmt, in_shape, ops, pe)
    x = _values(fmt, in_shape, seed=len(ops))
    want = x
    for kind, arg in ops:
        want = want.reshape(arg) if kind == "reshape" else want.transpose(arg)
    golden = execute_onnx(model, {"x": x})["y"]
    assert np.array_equal(golden, want)
    hw = model.transform(SpecializeLayers(PART)).transform(PrepareIP(PART, 10.0)).transform(PrepareRTLSim())
    hw = hw.transform(SetExecMode("rtlsim"))
    assert np.array_equal(execute_onnx(hw, {"x": x})["y"], want)
    inst = getCustomOp(hw.graph.node[0])
    assert (inst.lut_estimation() == 0) == inst.is_identity()


def test_pe_must_keep_groups_together():
    model = reorder_model(MinifloatFormat(3, 2), [1, 4, 2, 8], [("transpose", [0, 2, 3, 1])], 1)
    inst = getCustomOp(model.graph.node[0])
    assert inst.get_nodeattr("NumChannels") == 1  # K^T moves single elements
    inst.set_nodeattr("PE", 2)
    with pytest.raises(UnsupportedNodeError, match="PE=2 must divide NumChannels=1"):
        inst.get_instream_width()


def test_padding_and_selection_chains_from_the_class_token_vit(tmp_path):
    """pooling='cls': the zero token the class token goes into (Pad) becomes part of a reorder with padding
    entries (the read-out Gather feeds the final LayerNorm island here, so it stays until that is hardware); the
    converted graph equals the lowered graph."""
    import torch

    from compiler.export import export_qonnx_model
    from compiler.ptq import quantize_ptq
    from compiler.zoo import build_model
    from passes import lower_qonnx
    from passes.infer_hw import InferMinifloatAdd, InferMinifloatMVAU
    from passes.infer_stream_ops import InferMinifloatConvInpGen, InferMinifloatReorder
    from passes.nhwc import ConvertToNHWC

    torch.manual_seed(0)
    cfg = dict(image_size=8, patch_size=4, dim=16, depth=1, heads=2, pooling="cls")
    f, q = build_model("vit", "float", **cfg), build_model("vit", "fp:e3m2", **cfg)
    quantize_ptq(f, q, torch.randn(16, 1, 8, 8))
    low = lower_qonnx(export_qonnx_model(q, torch.randn(1, 1, 8, 8), tmp_path / "vit.onnx"))
    hw = low.transform(ConvertToNHWC()).transform(InferMinifloatMVAU(dynamic=True)).transform(InferMinifloatAdd())
    hw = hw.transform(InferMinifloatConvInpGen()).transform(InferMinifloatReorder())
    ops = [n.op_type for n in hw.graph.node]
    assert "Pad" not in ops
    reorders = [getCustomOp(n) for n in hw.graph.node if n.op_type == "MinifloatReorder"]
    assert any(-1 in list(r.get_nodeattr("index")) for r in reorders)  # the zero class-token slot
    assert any(r.n_outputs() > r.n_elements() for r in reorders)  # one more token than patches
    xs = np.random.default_rng(0).normal(size=(3, 1, 1, 8, 8)).astype(np.float32)
    for x in xs:
        a = execute_onnx(low, {low.graph.input[0].name: x})[low.graph.output[0].name]
        b = execute_onnx(hw, {hw.graph.input[0].name: x})[hw.graph.output[0].name]
        assert np.array_equal(a, b)


def test_padding_reorder_rtlsim():
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
    from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    fmt = MinifloatFormat(3, 2)
    idx = np.pad(np.arange(4 * 6).reshape(1, 4, 6), ((0, 0), (1, 0), (0, 0)), constant_values=-1)[:, :3].ravel()
    node = helper.make_node("MinifloatReorder", ["x"], ["y"], domain="finn.custom_op.fpgadataflow",
                            backend="fpgadataflow", inputShape=[1, 4, 6], outputShape=[1, 3, 6],
                            index=[int(i) for i in idx], NumChannels=aligned_group(idx, 24), PE=3,
                            dataType=fmt.datatype.name)
    graph = helper.make_graph([node], "pad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 6])])
    model = ModelWrapper(qonnx_make_model(graph)).transform(GiveUniqueNodeNames())
    model.set_tensor_datatype("x", fmt.datatype)
    x = _values(fmt, [1, 4, 6], seed=5)
    want = np.concatenate([np.zeros((1, 1, 6), np.float32), x[:, :2]], axis=1)
    assert np.array_equal(execute_onnx(model, {"x": x})["y"], want)
    hw = model.transform(SpecializeLayers(PART)).transform(PrepareIP(PART, 10.0)).transform(PrepareRTLSim())
    assert np.array_equal(execute_onnx(hw.transform(SetExecMode("rtlsim")), {"x": x})["y"], want)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].name}_{'x'.join(map(str, c[1]))}_pe{c[3]}")
def test_reorder_cppsim(case):
    from finn.transformation.fpgadataflow.compile_cppsim import CompileCppSim
    from finn.transformation.fpgadataflow.prepare_cppsim import PrepareCppSim
    from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    fmt, in_shape, ops, pe = case
    model = reorder_model(fmt, in_shape, ops, pe)
    getCustomOp(model.graph.node[0]).set_nodeattr("preferred_impl_style", "hls")
    hw = model.transform(SpecializeLayers(PART))
    assert hw.graph.node[0].op_type == "MinifloatReorder_hls"
    hw = hw.transform(PrepareCppSim()).transform(CompileCppSim()).transform(SetExecMode("cppsim"))
    x = _values(fmt, in_shape, seed=3)
    assert np.array_equal(execute_onnx(hw, {"x": x})["y"], execute_onnx(model, {"x": x})["y"])


@pytest.mark.parametrize("impl", ["rtl", "hls"])
def test_constant_slot_reorder_equals_python_in_simulation(impl):
    """A class token's slot: one token of constants in front of four patch tokens (index -2 - j reads constants[j],
    -1 a zero), PE 3: the constant words come from the ROM, in rtlsim and cppsim."""
    from finn.transformation.fpgadataflow.compile_cppsim import CompileCppSim
    from finn.transformation.fpgadataflow.prepare_cppsim import PrepareCppSim
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
    from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    fmt = MinifloatFormat(4, 3)
    token = np.array([1.5, -0.25, 0.0, 1.5, -448.0, 0.125], dtype=np.float32)  # a zero and a repeated value
    constants = sorted(set(float(v) for v in token if v != 0))
    slot = [-1 if v == 0 else -2 - constants.index(float(v)) for v in token]
    idx = np.concatenate([slot, np.arange(4 * 6)])
    node = helper.make_node("MinifloatReorder", ["x"], ["y"], domain="finn.custom_op.fpgadataflow",
                            backend="fpgadataflow", inputShape=[1, 4, 6], outputShape=[1, 5, 6],
                            index=[int(i) for i in idx], constants=constants, NumChannels=aligned_group(idx, 24),
                            PE=3, dataType=fmt.datatype.name, preferred_impl_style=impl)
    graph = helper.make_graph([node], "slot", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 6])])
    model = ModelWrapper(qonnx_make_model(graph)).transform(GiveUniqueNodeNames())
    model.set_tensor_datatype("x", fmt.datatype)
    x = _values(fmt, [1, 4, 6], seed=7)
    want = np.concatenate([token.reshape(1, 1, 6), x], axis=1)
    assert np.array_equal(execute_onnx(model, {"x": x})["y"], want)
    inst = getCustomOp(model.graph.node[0])
    assert len(inst.const_words()[0]) == 3  # zeros, then the slot's two words
    hw = model.transform(SpecializeLayers(PART))
    if impl == "rtl":
        hw = hw.transform(PrepareIP(PART, 10.0)).transform(PrepareRTLSim()).transform(SetExecMode("rtlsim"))
    else:
        hw = hw.transform(PrepareCppSim()).transform(CompileCppSim()).transform(SetExecMode("cppsim"))
    assert np.array_equal(execute_onnx(hw, {"x": x})["y"], want)
