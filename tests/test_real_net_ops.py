"""Ops of real torchvision networks that map to hardware: ReLU6 / clamp (MobileNetV2), overlapping padded max pooling
(the ResNet stem), pooling or flatten feeding a linear layer without a quantizer in between. Each one a tiny Brevitas
model, built through ``step_verify``: Python == RTL simulation bit for bit, and nothing left unmapped."""

import json

import brevitas.nn as qnn
import numpy as np
import pytest
import torch
from brevitas.graph.calibrate import calibration_mode
from lowering_cases import E3M2, Graph, lower_and_check_golden, matmul_graph, ops, the
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.util.basic import qonnx_make_model
from torch import nn

import compiler.steps  # noqa: F401  (registers the steps)
from compiler.config import BuildConfig
from compiler.export import export_qonnx_model
from compiler.numerics import IntFormat, MinifloatFormat
from compiler.runner import run_build
from compiler.zoo import build_model
from compiler.zoo.quantizers import act_quant, weight_quant
from custom_ops.general.common import threshold_ints
from finn.transformation.fpgadataflow.compile_cppsim import CompileCppSim
from finn.transformation.fpgadataflow.prepare_cppsim import PrepareCppSim
from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
from passes import lower_qonnx
from passes.compare import compare_lowered
from passes.convert_to_hw import ConvertToHardware, unmappable_nodes
from passes.infer_stream_ops import InferMinifloatMaxPool

FMT = "fp:e3m2"
PART = "xc7z020clg400-1"


def _conv(cin, cout, fmt=FMT):
    return qnn.QuantConv2d(cin, cout, 3, padding=1, bias=False, weight_quant=weight_quant(fmt))


class ReLU6Net(nn.Module):
    """conv-BN-ReLU6-quant (MobileNetV2's block), then clamp between two quantizers, a linear head."""

    def __init__(self, fmt=FMT):
        super().__init__()
        self.q0 = qnn.QuantIdentity(act_quant=act_quant(fmt))
        self.conv, self.bn, self.relu6 = _conv(2, 4, fmt), nn.BatchNorm2d(4), nn.ReLU6()
        self.q1 = qnn.QuantIdentity(act_quant=act_quant(fmt))
        self.q2 = qnn.QuantIdentity(act_quant=act_quant("fp:e2m2"))
        self.fc = qnn.QuantLinear(4 * 16, 3, bias=True, weight_quant=weight_quant(fmt))

    def forward(self, x):
        x = self.q1(self.relu6(self.bn(self.conv(self.q0(x)))))
        x = self.q2(torch.clamp(x, -0.5, 1.5))
        return self.fc(torch.flatten(x, 1))


def _calibrated(net, x):
    torch.manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 1.0)
    with calibration_mode(net):
        net(x)
    return net.eval()


def _export(net, shape, tmp_path, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(64, *shape) * 2
    return export_qonnx_model(_calibrated(net, x), x[:1], tmp_path / "net.onnx")


def _lowered_equals_qonnx(qmodel, shape, n=16):
    """Every activation quantizer's codes equal QONNX's, the outputs up to fp32 accumulation noise."""
    low = lower_qonnx(qmodel)
    xs = np.random.default_rng(1).normal(size=(n, *shape)).astype(np.float32) * 2
    report = compare_lowered(qmodel, low, xs)
    assert report["differing_codes"] == 0 and report["max_abs_output_diff"] < 1e-4, report
    return low


def _build(qmodel, shape, tmp_path, images=2):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(images, *shape)).astype(np.float32) * 2)
    cfg = BuildConfig(output_dir=str(tmp_path / "build"), verify_input_npy=str(tmp_path / "x.npy"))
    model = run_build(qmodel, cfg, progress=False)
    ver = json.loads((tmp_path / "build" / "report" / "verification.json").read_text())
    assert ver["passed"] and ver["stitched_rtlsim"]["passed"] == images
    assert all(v["failed"] == 0 and v["mode"] == "rtlsim" for v in ver["nodes"].values())
    return model


def test_relu6_and_clamp_fold_into_the_next_requantizers(tmp_path):
    qmodel = _export(ReLU6Net(), (2, 4, 4), tmp_path)
    assert [n.op_type for n in qmodel.graph.node].count("Clip") == 2
    low = _lowered_equals_qonnx(qmodel, (2, 4, 4))
    assert "Clip" not in [n.op_type for n in low.graph.node]
    assert unmappable_nodes(low.transform(ConvertToHardware())) == []
    model = _build(qmodel, (2, 4, 4), tmp_path)
    assert "MinifloatLUT_rtl" in ops(model)  # the clamp between two quantizers: a table over the input codes


@pytest.mark.parametrize("bounds,relu", [((-1.0, 2.5), False), ((0.0, 6.0), True), ((None, 0.75), False),
                                         ((0.5, None), True)])
def test_clip_on_an_accumulator_is_exact_in_the_thresholds(bounds, relu):
    g = Graph(x=[1, 8])
    inputs = [g.node("Relu", [matmul_graph(g)], "relu") if relu else matmul_graph(g)]
    inputs += [g.const(f"b{i}", v) if v is not None else "" for i, v in enumerate(bounds)]
    g.quant(g.node("Clip", inputs, "clip"), "y", 0.25)
    low = lower_and_check_golden(g.model("y", [1, 4]), runs=20)
    assert "Clip" not in ops(low) and not getCustomOp(the(low, "MinifloatThreshold")).get_nodeattr("affine")
    t = threshold_ints(low.get_initializer(the(low, "MinifloatThreshold").input[1]))
    lo, hi = [None if v is None else E3M2.values().tolist().index(float(E3M2.quantize(np.float32(v / 0.25))))
              for v in bounds]  # output indices of the quantized bounds: the thresholds around them are constant
    assert lo is None or (t[:, :lo] == t.min()).all()
    assert hi is None or (t[:, hi:] == t.max()).all()


def test_clip_of_a_clip_and_a_relu_after_a_clip_compose():
    g = Graph(x=[1, 8])
    g.const("lo", -2.0), g.const("hi", 3.0), g.const("lo2", 1.0), g.const("hi2", 5.0)
    clipped = g.node("Clip", [g.node("Clip", [matmul_graph(g), "lo", "hi"], "c1"), "lo2", "hi2"], "c2")
    g.quant(g.node("Relu", [clipped], "relu"), "y", 0.25)
    low = lower_and_check_golden(g.model("y", [1, 4]), runs=20)
    assert ops(low).count("MinifloatThreshold") == 1 and "Clip" not in ops(low)


def test_a_float_island_after_a_clip_applies_the_clip():
    g = Graph(x=[1, 8])
    g.const("lo", -0.5), g.const("hi", 1.0)
    g.node("Sin", [g.node("Clip", [matmul_graph(g), "lo", "hi"], "clip")], "y")
    low = lower_and_check_golden(g.model("y", [1, 4]), runs=10)
    assert "Clip" in ops(low) and "Sin" in ops(low)


class StemNet(nn.Module):
    """The ResNet stem: conv-BN-quantizer (signed here, so the padding value matters), max pooling with kernel 3,
    stride 2, padding 1, then flatten, a quantizer and a linear head."""

    def __init__(self, fmt=FMT):
        super().__init__()
        self.q0 = qnn.QuantIdentity(act_quant=act_quant(fmt))
        self.conv, self.bn = _conv(2, 4, fmt), nn.BatchNorm2d(4)
        self.q1 = qnn.QuantIdentity(act_quant=act_quant(fmt))
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.q2 = qnn.QuantIdentity(act_quant=act_quant(fmt))
        self.fc = qnn.QuantLinear(4 * 4 * 4, 3, bias=True, weight_quant=weight_quant(fmt))

    def forward(self, x):
        x = self.pool(self.q1(self.bn(self.conv(self.q0(x)))))
        return self.fc(self.q2(torch.flatten(x, 1)))


def test_resnet_stem_max_pool_builds_as_sliding_window_and_pool(tmp_path):
    qmodel = _export(StemNet(), (2, 8, 8), tmp_path)
    low = _lowered_equals_qonnx(qmodel, (2, 8, 8))
    assert unmappable_nodes(low.transform(ConvertToHardware())) == []
    model = _build(qmodel, (2, 8, 8), tmp_path)
    pools = [n for n in model.graph.node if n.op_type == "MinifloatMaxPool_rtl"]
    assert len(pools) == 1 and getCustomOp(pools[0]).get_nodeattr("WindowInput") == 1
    swg = model.find_producer(pools[0].input[0])
    assert swg.op_type == "MinifloatConvInpGen_rtl" and getCustomOp(swg).get_nodeattr("PadValue") == -E3M2.max


MAXPOOL_CASES = [  # fmt, H, W, C, lanes, kernel, stride, pad [t, l, b, r]
    (MinifloatFormat(3, 2), 7, 6, 4, 2, (3, 3), (2, 2), (1, 1, 1, 1)),
    (IntFormat(4), 5, 5, 3, 3, (2, 2), (1, 1), (0, 0, 1, 1)),
    (IntFormat(3, signed=False), 4, 6, 2, 1, (3, 2), (1, 2), (1, 0, 1, 0)),
]


def _maxpool_graph(fmt, h, w, c, lanes, k, s, pad):
    """``MaxPoolNHWC`` on a code tensor, converted by ``InferMinifloatMaxPool``; the torch reference output."""
    oh, ow = (h + pad[0] + pad[2] - k[0]) // s[0] + 1, (w + pad[1] + pad[3] - k[1]) // s[1] + 1
    node = helper.make_node("MaxPoolNHWC", ["x"], ["y"], domain="qonnx.custom_op.general", kernel_shape=list(k),
                            strides=list(s), pads=list(pad))
    graph = helper.make_graph([node], "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, h, w, c])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, oh, ow, c])])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_tensor_datatype("x", fmt.datatype)
    model = model.transform(InferMinifloatMaxPool())
    for n in model.graph.node:
        getCustomOp(n).set_nodeattr("SIMD" if n.op_type == "MinifloatConvInpGen" else "PE", lanes)
    return model


@pytest.mark.parametrize("case", MAXPOOL_CASES, ids=lambda c: f"{c[0].name}_k{c[5][0]}{c[5][1]}_s{c[6][0]}{c[6][1]}")
def test_overlapping_padded_max_pool_python_equals_torch_cppsim_and_rtlsim(case):
    fmt, h, w, c, lanes, k, s, pad = case
    model = _maxpool_graph(*case)
    assert [n.op_type for n in model.graph.node] == ["MinifloatConvInpGen", "MinifloatMaxPool"]
    x = np.random.default_rng(c).choice(fmt.values(), size=(1, h, w, c)).astype(np.float32)
    xt = torch.nn.functional.pad(torch.from_numpy(x).permute(0, 3, 1, 2), (pad[1], pad[3], pad[0], pad[2]),
                                 value=-float("inf"))
    want = torch.nn.functional.max_pool2d(xt, k, s).permute(0, 2, 3, 1).numpy()
    golden = execute_onnx(model, {"x": x})["y"]
    assert np.array_equal(golden, want)
    for style in ("rtl", "hls"):
        for n in model.graph.node:
            getCustomOp(n).set_nodeattr("preferred_impl_style", style)
        hw = model.transform(SpecializeLayers(PART))
        prep = [PrepareIP(PART, 10.0), PrepareRTLSim()] if style == "rtl" else [PrepareCppSim(), CompileCppSim()]
        for t in prep:
            hw = hw.transform(t)
        hw = hw.transform(SetExecMode("rtlsim" if style == "rtl" else "cppsim"))
        assert np.array_equal(execute_onnx(hw, {"x": x})["y"], golden), style


class PooledHeadNet(nn.Module):
    """conv-ReLU, global average pooling, flatten and a linear layer without an input quantizer (torchvision's
    ``avgpool -> flatten -> fc`` with only the weights quantized)."""

    def __init__(self, fmt=FMT):
        super().__init__()
        self.q0 = qnn.QuantIdentity(act_quant=act_quant(fmt))
        self.conv, self.act = _conv(2, 4, fmt), qnn.QuantReLU(act_quant=act_quant(fmt))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = qnn.QuantLinear(4, 3, bias=True, weight_quant=weight_quant(fmt))

    def forward(self, x):
        return self.fc(torch.flatten(self.gap(self.act(self.conv(self.q0(x)))), 1))


def test_pooled_sum_feeds_the_linear_layer_as_an_integer_input(tmp_path):
    qmodel = _export(PooledHeadNet(), (2, 4, 4), tmp_path)
    low = _lowered_equals_qonnx(qmodel, (2, 4, 4))
    pool_out = the(low, "ExactSumPool").output[0]
    mm = [n for n in low.graph.node if n.op_type == "ExactMatMul"][-1]
    fmt = getCustomOp(mm).get_nodeattr("input_format")
    assert fmt.startswith("INT") and fmt == low.get_tensor_datatype(pool_out).name  # the exact sum's INTn
    assert not {"Gemm", "MatMul"} & set(ops(low))  # no float island: the head is exact
    model = _build(qmodel, (2, 4, 4), tmp_path)
    assert {"MinifloatGlobalAccPool_rtl", "MinifloatMVAU_rtl"} <= set(ops(model))


def test_zoo_cnn_with_flatten_head_builds(tmp_path):
    """The zoo's ``global_pool="flatten"`` CNN: max pooling, flatten, the head's requantizer of the pooled values (a
    table), the linear head."""
    torch.manual_seed(0)
    cfg = dict(width=4, image_size=4, global_pool="flatten")
    net = _calibrated(build_model("cnn", FMT, **cfg), torch.randn(64, 1, 4, 4))
    qmodel = export_qonnx_model(net, torch.randn(1, 1, 4, 4), tmp_path / "cnn.onnx")
    _lowered_equals_qonnx(qmodel, (1, 4, 4))
    model = _build(qmodel, (1, 4, 4), tmp_path)
    assert {"MinifloatMaxPool_rtl", "MinifloatLUT_rtl", "MinifloatAdd_rtl"} <= {n.op_type for n in model.graph.node}


class UnitMapConvNet(nn.Module):
    """Two 3x3 convolutions with padding 1 on a map of height 1 (a ResNet's last stage at a small input size)."""

    def __init__(self, fmt=FMT):
        super().__init__()
        self.q0 = qnn.QuantIdentity(act_quant=act_quant(fmt))
        self.conv1, self.q1 = _conv(3, 4, fmt), qnn.QuantIdentity(act_quant=act_quant(fmt))
        self.conv2, self.q2 = _conv(4, 4, fmt), qnn.QuantIdentity(act_quant=act_quant(fmt))

    def forward(self, x):
        return self.q2(self.conv2(self.q1(self.conv1(self.q0(x)))))


@pytest.mark.parametrize("shape", [(3, 1, 1), (3, 1, 3)], ids=["1x1", "1x3"])
def test_padded_conv_on_a_unit_axis_keeps_the_tap_that_sees_the_pixel(shape, tmp_path):
    """qonnx' Im2Col refuses a 3x3 kernel with padding along an axis of size 1; the lowering keeps the one kernel tap
    that sees the pixel there (the others multiply zero padding), exact against QONNX, Python == rtlsim."""
    qmodel = _export(UnitMapConvNet(), shape, tmp_path)
    low = _lowered_equals_qonnx(qmodel, shape)
    im2col = [getCustomOp(n) for n in low.graph.node if n.op_type == "Im2Col"]
    if shape[2] == 1:
        assert not im2col  # 1x1 on both axes: a plain matrix product per pixel
    else:
        assert [c.get_nodeattr("kernel_size") for c in im2col] == [[1, 3]] * 2
        assert [c.get_nodeattr("pad_amount") for c in im2col] == [[0, 1, 0, 1]] * 2
    _build(qmodel, shape, tmp_path)
