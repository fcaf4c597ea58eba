"""Sliding window, max pooling and global accumulating pooling on code streams: Python == qonnx reference ==
Icarus rtlsim, bit for bit; the conversion passes from the (NHWC) lowered CNN."""

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
from compiler.numerics import IntFormat, MinifloatFormat

PART = "xc7z020clg400-1"


def _single_node(op, in_shape, out_shape, in_dt, out_dt, **attrs):
    node = helper.make_node(op, ["x"], ["y"], domain="finn.custom_op.fpgadataflow", backend="fpgadataflow", **attrs)
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)])
    model = ModelWrapper(qonnx_make_model(graph)).transform(GiveUniqueNodeNames())
    model.set_tensor_datatype("x", DataType[in_dt])
    model.set_tensor_datatype("y", DataType[out_dt])
    return model


def _random_values(fmt, shape, seed):
    vals = fmt.values()
    return np.random.default_rng(seed).choice(vals, size=shape).astype(np.float32)


def _rtlsim(model):
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
    from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    hw = model.transform(SpecializeLayers(PART))
    assert hw.graph.node[0].op_type.endswith("_rtl")
    return hw.transform(PrepareIP(PART, 10.0)).transform(PrepareRTLSim()).transform(SetExecMode("rtlsim"))


def _im2col_reference(x, k, stride, pad, dil, fmt):
    """qonnx's own Im2Col on the same tensor."""
    node = helper.make_node("Im2Col", ["x"], ["y"], domain="qonnx.custom_op.general", stride=list(stride),
                            kernel_size=list(k), input_shape=str(tuple(x.shape)), pad_amount=list(pad),
                            dilations=list(dil))
    graph = helper.make_graph([node], "ref", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_tensor_datatype("x", fmt.datatype)
    return execute_onnx(model, {"x": x})["y"]


SWG_CASES = [  # fmt, H, W, C, SIMD, kernel, stride, pad [t, l, b, r], dilation
    (MinifloatFormat(3, 2), 5, 5, 4, 2, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    (IntFormat(4), 6, 4, 3, 3, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1)),
    (MinifloatFormat(4, 3), 7, 6, 2, 1, (3, 2), (2, 1), (1, 0, 2, 1), (1, 2)),
    (MinifloatFormat(2, 1), 4, 4, 8, 4, (4, 4), (4, 4), (0, 0, 0, 0), (1, 1)),
]


@pytest.mark.parametrize("case", SWG_CASES, ids=lambda c: f"{c[0].name}_{c[1]}x{c[2]}x{c[3]}_k{c[5][0]}{c[5][1]}")
def test_sliding_window_equals_qonnx_im2col_and_rtlsim(case):
    fmt, h, w, c, simd, k, s, pad, dil = case
    x = _random_values(fmt, (1, h, w, c), seed=h * w + c)
    ref = _im2col_reference(x, k, s, pad, dil, fmt)
    model = _single_node("MinifloatConvInpGen", [1, h, w, c], list(ref.shape), fmt.qonnx_name, fmt.qonnx_name,
                         IFMDim=[h, w], NumChannels=c, SIMD=simd, ConvKernelDim=list(k), Stride=list(s),
                         Dilation=list(dil), Padding=list(pad), inputDataType=fmt.qonnx_name,
                         outputDataType=fmt.qonnx_name)
    golden = execute_onnx(model, {"x": x})["y"]
    assert golden.shape == ref.shape and np.array_equal(golden, ref)
    hw = _rtlsim(model)
    for seed in range(2):  # two frames: the second goes through the other buffer
        xs = x if seed == 0 else _random_values(fmt, x.shape, seed=99)
        assert np.array_equal(execute_onnx(hw, {"x": xs})["y"], execute_onnx(model, {"x": xs})["y"])
    inst = getCustomOp(hw.graph.node[0])
    assert inst.get_nodeattr("cycles_rtlsim") >= inst.get_exp_cycles() > 0


POOL_CASES = [  # fmt, H, W, C, PE, kernel
    (MinifloatFormat(3, 2), 4, 4, 4, 2, (2, 2)),
    (IntFormat(5), 5, 7, 3, 1, (2, 3)),  # rows/columns beyond the last window are dropped
    (IntFormat(4, signed=False), 6, 6, 2, 2, (3, 3)),
    (MinifloatFormat(4, 3), 2, 8, 6, 3, (1, 2)),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: f"{c[0].name}_{c[1]}x{c[2]}x{c[3]}_k{c[5][0]}{c[5][1]}")
def test_maxpool_python_equals_numpy_and_rtlsim(case):
    fmt, h, w, c, pe, k = case
    x = _random_values(fmt, (1, h, w, c), seed=c)
    oh, ow = h // k[0], w // k[1]
    model = _single_node("MinifloatMaxPool", [1, h, w, c], [1, oh, ow, c], fmt.qonnx_name, fmt.qonnx_name,
                         IFMDim=[h, w], NumChannels=c, PE=pe, PoolDim=list(k), inputDataType=fmt.qonnx_name,
                         outputDataType=fmt.qonnx_name)
    golden = execute_onnx(model, {"x": x})["y"]
    want = np.array([[[x[0, i * k[0]:(i + 1) * k[0], j * k[1]:(j + 1) * k[1], ch].max() for ch in range(c)]
                      for j in range(ow)] for i in range(oh)])[None]
    assert np.array_equal(golden, want)
    assert np.array_equal(execute_onnx(_rtlsim(model), {"x": x})["y"], golden)


GAP_CASES = [  # fmt, numInputVectors, C, PE
    (MinifloatFormat(3, 2), [1, 4, 4], 4, 2),
    (IntFormat(4), [1, 7], 6, 3),
    (MinifloatFormat(4, 3), [1, 3, 5], 2, 1),
    (IntFormat(3, signed=False), [1, 2, 2], 8, 8),
]


@pytest.mark.parametrize("case", GAP_CASES, ids=lambda c: f"{c[0].name}_{'x'.join(map(str, c[1]))}_c{c[2]}")
def test_global_acc_pool_python_equals_exact_sum_and_rtlsim(case):
    fmt, vecs, c, pe = case
    x = _random_values(fmt, (*vecs, c), seed=c)
    ints = np.rint(np.ldexp(x.astype(np.float64), -fmt.lsb_exponent)).astype(np.int64)
    want = ints.sum(axis=tuple(range(1, len(vecs))), keepdims=True)
    bits = int(np.ceil(np.log2(np.abs(want).max() + 1))) + 2
    out_shape = [1] * len(vecs) + [c]
    model = _single_node("MinifloatGlobalAccPool", [*vecs, c], out_shape, fmt.qonnx_name, f"INT{bits}",
                         IFMDim=[1, int(np.prod(vecs[1:]))], NumChannels=c, PE=pe, numInputVectors=vecs,
                         inputDataType=fmt.qonnx_name, outputDataType=f"INT{bits}")
    golden = execute_onnx(model, {"x": x})["y"]
    assert np.array_equal(golden, want)
    assert np.array_equal(execute_onnx(_rtlsim(model), {"x": x})["y"], want)


def test_unfoldable_lanes_are_reported_with_the_node_name():
    from compiler.errors import UnsupportedNodeError

    model = _single_node("MinifloatMaxPool", [1, 4, 4, 6], [1, 2, 2, 6], "INT4", "INT4", IFMDim=[4, 4],
                         NumChannels=6, PE=4, PoolDim=[2, 2], inputDataType="INT4", outputDataType="INT4")
    with pytest.raises(UnsupportedNodeError, match="MinifloatMaxPool_0: PE=4 must divide NumChannels=6"):
        getCustomOp(model.graph.node[0]).get_folded_input_shape()


def _cppsim(model):
    from finn.transformation.fpgadataflow.compile_cppsim import CompileCppSim
    from finn.transformation.fpgadataflow.prepare_cppsim import PrepareCppSim
    from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    getCustomOp(model.graph.node[0]).set_nodeattr("preferred_impl_style", "hls")
    hw = model.transform(SpecializeLayers(PART))
    assert hw.graph.node[0].op_type.endswith("_hls")
    return hw.transform(PrepareCppSim()).transform(CompileCppSim()).transform(SetExecMode("cppsim"))


@pytest.mark.parametrize("case", SWG_CASES[:3], ids=lambda c: f"{c[0].name}_{c[1]}x{c[2]}x{c[3]}_k{c[5][0]}{c[5][1]}")
def test_sliding_window_cppsim(case):
    fmt, h, w, c, simd, k, s, pad, dil = case
    x = _random_values(fmt, (1, h, w, c), seed=h * w + c)
    oh, ow = (h + pad[0] + pad[2] - dil[0] * (k[0] - 1) - 1) // s[0] + 1, (w + pad[1] + pad[3] - dil[1] * (k[1] - 1) - 1) // s[1] + 1
    model = _single_node("MinifloatConvInpGen", [1, h, w, c], [1, oh, ow, k[0] * k[1] * c], fmt.qonnx_name,
                         fmt.qonnx_name, IFMDim=[h, w], NumChannels=c, SIMD=simd, ConvKernelDim=list(k),
                         Stride=list(s), Dilation=list(dil), Padding=list(pad), inputDataType=fmt.qonnx_name,
                         outputDataType=fmt.qonnx_name)
    assert np.array_equal(execute_onnx(_cppsim(model), {"x": x})["y"], execute_onnx(model, {"x": x})["y"])


@pytest.mark.parametrize("case", POOL_CASES[:3], ids=lambda c: f"{c[0].name}_{c[1]}x{c[2]}x{c[3]}_k{c[5][0]}{c[5][1]}")
def test_maxpool_cppsim(case):
    fmt, h, w, c, pe, k = case
    x = _random_values(fmt, (1, h, w, c), seed=c)
    model = _single_node("MinifloatMaxPool", [1, h, w, c], [1, h // k[0], w // k[1], c], fmt.qonnx_name,
                         fmt.qonnx_name, IFMDim=[h, w], NumChannels=c, PE=pe, PoolDim=list(k),
                         inputDataType=fmt.qonnx_name, outputDataType=fmt.qonnx_name)
    assert np.array_equal(execute_onnx(_cppsim(model), {"x": x})["y"], execute_onnx(model, {"x": x})["y"])


@pytest.mark.parametrize("case", GAP_CASES[:3], ids=lambda c: f"{c[0].name}_{'x'.join(map(str, c[1]))}_c{c[2]}")
def test_global_acc_pool_cppsim(case):
    fmt, vecs, c, pe = case
    x = _random_values(fmt, (*vecs, c), seed=c)
    model = _single_node("MinifloatGlobalAccPool", [*vecs, c], [1] * len(vecs) + [c], fmt.qonnx_name, "INT24",
                         IFMDim=[1, int(np.prod(vecs[1:]))], NumChannels=c, PE=pe, numInputVectors=vecs,
                         inputDataType=fmt.qonnx_name, outputDataType="INT24")
    assert np.array_equal(execute_onnx(_cppsim(model), {"x": x})["y"], execute_onnx(model, {"x": x})["y"])
