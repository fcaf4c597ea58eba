"""Depthwise convolution: exact lowering (Im2Col depthwise + block-diagonal ExactMatMul) vs QONNX, the hardware
conversion to MinifloatConvInpGen + MinifloatVVAU, the op's Python golden model == an independent reference ==
rtlsim bit for bit on several foldings, and a small Brevitas CNN with a depthwise layer built through step_verify."""

import json
import shutil

import brevitas.nn as qnn
import numpy as np
import pytest
import torch
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from torch import nn

import compiler.steps  # noqa: F401  (registers the steps)
from compiler.config import BuildConfig
from compiler.errors import UnmappableNodesError, UnsupportedNodeError
from compiler.export import export_qonnx_model
from compiler.numerics import IntFormat, MinifloatFormat
from compiler.ptq import quantize_ptq
from compiler.runner import run_build
from compiler.zoo.spec import QuantSites
from custom_ops.examples import _thresholds, weighted_node_model
from custom_ops.general.common import exact_matmul
from finn.transformation.fpgadataflow.compile_cppsim import CompileCppSim
from finn.transformation.fpgadataflow.prepare_cppsim import PrepareCppSim
from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
from passes import lower_qonnx
from passes.convert_to_hw import ConvertToHardware
from passes.lowering.matrix import block_diagonal
from tests.lowering_cases import assert_refused, lower_and_check_golden, ops

needs_sim = pytest.mark.skipif(shutil.which("g++") is None or (shutil.which("iverilog") is None and
                                                                shutil.which("verilator") is None),
                               reason="needs g++ and Verilator or Icarus Verilog")


class DepthwiseNet(nn.Module):
    """Input quantizer, depthwise 3x3 conv (``groups``) + BN + quantized ReLU; with ``head``: a stem conv before
    it and global average pooling + a linear head after it (a classifier for the build)."""

    def __init__(self, spec, channels=4, groups=None, stride=1, bias=False, head=False):
        super().__init__()
        q = QuantSites(spec)
        self.head_on = head
        self.input_quant = qnn.QuantIdentity(act_quant=q.act("input_quant"))
        if head:
            self.stem = qnn.QuantConv2d(1, channels, 3, padding=1, bias=False, weight_quant=q.weight("stem"))
            self.stem_bn = nn.BatchNorm2d(channels)
            self.stem_act = qnn.QuantReLU(act_quant=q.act("stem_act"))
        self.dw = qnn.QuantConv2d(channels, channels, 3, stride=stride, padding=1, groups=groups or channels,
                                  bias=bias, weight_quant=q.weight("dw"))
        self.bn = nn.BatchNorm2d(channels)
        self.act = qnn.QuantReLU(act_quant=q.act("act"))
        if head:
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.head_quant = qnn.QuantIdentity(act_quant=q.act("head_quant"))
            self.head = qnn.QuantLinear(channels, 10, bias=True, weight_quant=q.weight("head"))
        q.finish(self)

    def forward(self, x):
        x = self.input_quant(x)
        if self.head_on:
            x = self.stem_act(self.stem_bn(self.stem(x)))
        x = self.act(self.bn(self.dw(x)))
        if self.head_on:
            x = self.head(self.head_quant(torch.flatten(self.pool(x), 1)))
        return x


def _qonnx(tmp_path, spec, in_shape=(1, 4, 6, 6), **kw):
    torch.manual_seed(0)
    f, q = DepthwiseNet("float", **kw), DepthwiseNet(spec, **kw)
    with torch.no_grad():  # non-trivial BN statistics
        for bn in [m for m in f.modules() if isinstance(m, nn.BatchNorm2d)]:
            bn.running_mean.normal_(0, 0.3)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.normal_(1, 0.3)
    f.eval()
    quantize_ptq(f, q, torch.randn(64, *in_shape[1:]))
    return export_qonnx_model(q, torch.randn(*in_shape), tmp_path / "dw.onnx")


SPECS = ["fp:e3m2", "int:4", "w=fp:e2m1,a=fp:e4m3", "w=int:3,a=fp:e3m2"]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("stride,bias", [(1, False), (2, True)])
def test_depthwise_lowering_is_exact(spec, stride, bias, tmp_path):
    model = _qonnx(tmp_path, spec, stride=stride, bias=bias)
    low = lower_and_check_golden(model)
    assert "Conv" not in ops(low)
    im2col = low.get_nodes_by_op_type("Im2Col")[0]
    assert getCustomOp(im2col).get_nodeattr("depthwise") == 1
    mm = low.get_nodes_by_op_type("ExactMatMul")[0]
    assert low.get_initializer(mm.input[1]).shape == (9 * 4, 4)


def test_block_diagonal_layout():
    w = np.arange(2 * 1 * 2 * 2, dtype=np.float32).reshape(2, 1, 2, 2) + 1
    bd = block_diagonal(w)
    assert bd.shape == (8, 2)
    for k in range(4):
        assert bd[2 * k, 0] == w[0, 0, k // 2, k % 2] and bd[2 * k + 1, 1] == w[1, 0, k // 2, k % 2]
        assert bd[2 * k, 1] == 0 and bd[2 * k + 1, 0] == 0


def test_other_group_counts_are_refused_naming_the_node(tmp_path):
    model = _qonnx(tmp_path, "fp:e3m2", groups=2)
    conv = model.get_nodes_by_op_type("Conv")[0]
    assert_refused(model, conv.name, "group=2 with weight shape")
    with pytest.raises(UnmappableNodesError, match="Conv x1.*depthwise"):
        lower_qonnx(model).transform(ConvertToHardware())


@pytest.mark.parametrize("spec", ["fp:e3m2", "int:4"])
def test_conversion_maps_to_conv_inp_gen_and_vvau(spec, tmp_path):
    low = lower_qonnx(_qonnx(tmp_path, spec, stride=2))
    hw = low.transform(ConvertToHardware())
    types = ops(hw)
    assert "MinifloatConvInpGen" in types and "MinifloatVVAU" in types and "MinifloatMVAU" not in types
    vvau = getCustomOp(hw.get_nodes_by_op_type("MinifloatVVAU")[0])
    assert (vvau.get_nodeattr("MW"), vvau.get_nodeattr("MH")) == (9, 4)
    assert hw.get_initializer(vvau.onnx_node.input[1]).shape == (9, 4)  # per-channel weights only
    assert vvau.get_op_and_param_counts()[f"param_weight_{vvau.weight_format().name}"] == 36
    rng = np.random.default_rng(1)
    name_in, name_out = low.graph.input[0].name, low.graph.output[0].name
    for _ in range(3):
        x = rng.normal(size=(1, 4, 6, 6)).astype(np.float32) * 2
        assert np.array_equal(execute_onnx(low, {name_in: x})[name_out], execute_onnx(hw, {name_in: x})[name_out])


# --- the op ----------------------------------------------------------------------------------------------------------
def random_vvau_model(fa, fw, fo, k, c, pe, simd, no_act, n_vec=5, seed=0, domain_suffix=""):
    """One MinifloatVVAU node on random windows x (n_vec, K*C) and weights W (K, C); returns (model, x)."""
    rng = np.random.default_rng(seed)
    w = fw.values()[rng.integers(0, len(fw.values()), size=(k, c))].astype(np.float32)
    x = fa.values()[rng.integers(0, len(fa.values()), size=(n_vec, k * c))].astype(np.float32)
    wi = np.rint(w.astype(np.float64) * 2.0 ** -fw.lsb_exponent)
    xi = np.rint(x.astype(np.float64) * 2.0 ** -fa.lsb_exponent).reshape(n_vec, k, c)
    acc_bits = int(np.abs(wi).sum(axis=0).max() * fa.max_int).bit_length() + 2
    inputs, inits = ["x", "W"], {"W": w}
    if not no_act:
        sample = (xi * wi).sum(axis=1)
        inits["T"] = np.stack([_thresholds(sample[:, h], len(fo.values()) - 1, rng) for h in range(c)]
                              ).astype(np.float32)
        inputs.append("T")
    model = weighted_node_model("MinifloatVVAU", inputs, inits, fa, fw, [n_vec, k * c], [n_vec, c], domain_suffix,
                                MW=k, MH=c, PE=pe, SIMD=simd, accDataType=f"INT{acc_bits}",
                                outputDataType=f"INT{acc_bits}" if no_act else fo.qonnx_name,
                                noActivation=int(no_act), numInputVectors=[n_vec])
    return model, x


def reference(fa, fw, fo, model, x, no_act):
    """Independent reference: the block-diagonal matrix product (FINN's sparse depthwise MatMul), then thresholds."""
    w = model.get_initializer("W")
    k, c = w.shape
    wi = np.rint(block_diagonal(w.T.reshape(c, 1, k, 1)).astype(np.float64) * 2.0 ** -fw.lsb_exponent)
    xi = np.rint(x.astype(np.float64) * 2.0 ** -fa.lsb_exponent)
    acc = exact_matmul(xi.astype(np.int64), wi.astype(np.int64))
    if no_act:
        return acc
    t = model.get_initializer("T")
    counts = (acc[:, :, None] >= t[None]).sum(axis=-1)
    return fo.values()[counts]


F = MinifloatFormat
CASES = [  # (input, weight, output, K, C, PE, SIMD, noActivation)
    (F(3, 2), F(3, 2), F(3, 2), 9, 4, 1, 1, 0),
    (F(4, 3), F(2, 1), F(4, 3), 9, 6, 2, 1, 0),
    (F(2, 3), F(3, 2), F(2, 3), 9, 4, 4, 3, 1),
    (IntFormat(4, signed=False), IntFormat(4, narrow=True), IntFormat(4), 9, 8, 8, 9, 0),
    (F(3, 2), IntFormat(3, narrow=True), F(3, 2), 4, 6, 3, 1, 1),
]


def _id(case):
    fa, fw, fo, k, c, pe, simd, no_act = case
    return f"{fa.name}-{fw.name}-K{k}C{c}-PE{pe}-SIMD{simd}-{'acc' if no_act else fo.name}"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_vvau_python_matches_block_diagonal_reference(case):
    fa, fw, fo, k, c, pe, simd, no_act = case
    model, x = random_vvau_model(fa, fw, fo, k, c, pe, simd, no_act)
    got = execute_onnx(model, {"x": x})["y"]
    assert np.array_equal(np.asarray(got, dtype=np.float64), np.asarray(reference(fa, fw, fo, model, x, no_act),
                                                                         dtype=np.float64))


@needs_sim
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_vvau_cppsim_and_rtlsim_bit_exact(case, tmp_path):
    fa, fw, fo, k, c, pe, simd, no_act = case
    model, x = random_vvau_model(fa, fw, fo, k, c, pe, simd, no_act)
    want = np.asarray(execute_onnx(model, {"x": x})["y"], dtype=np.float64)
    cpp, _ = random_vvau_model(fa, fw, fo, k, c, pe, simd, no_act, domain_suffix=".hls")
    cpp.graph.node[0].op_type = "MinifloatVVAU_hls"
    cpp = cpp.transform(PrepareCppSim()).transform(CompileCppSim()).transform(SetExecMode("cppsim"))
    assert np.array_equal(np.asarray(execute_onnx(cpp, {"x": x})["y"], dtype=np.float64), want)
    sim, _ = random_vvau_model(fa, fw, fo, k, c, pe, simd, no_act, domain_suffix=".rtl")
    sim.graph.node[0].op_type = "MinifloatVVAU_rtl"
    sim = sim.transform(PrepareIP("xc7z020clg400-1", 10.0)).transform(PrepareRTLSim())
    sim = sim.transform(SetExecMode("rtlsim"))
    assert np.array_equal(np.asarray(execute_onnx(sim, {"x": x})["y"], dtype=np.float64), want)
    inst = getCustomOp(sim.graph.node[0])
    context = {"x": x}
    inst.run_rtlsim(context, gaps=False)
    exp = inst.get_exp_cycles()
    assert exp <= inst.get_nodeattr("cycles_rtlsim") <= exp + 4


def test_vvau_folding_space_and_bad_folding():
    model, _ = random_vvau_model(F(3, 2), F(3, 2), F(3, 2), 9, 4, 1, 1, 0)
    inst = getCustomOp(model.graph.node[0])
    space = inst.folding_space()
    assert {"PE": 2, "SIMD": 1} in space and {"PE": 4, "SIMD": 3} in space and {"PE": 2, "SIMD": 3} not in space
    cycles = []
    for fold in space:
        inst.set_nodeattr("PE", fold["PE"])
        inst.set_nodeattr("SIMD", fold["SIMD"])
        cycles.append(inst.get_exp_cycles())
        assert inst.node_res_estimation("xc7z020clg400-1")["LUT"] > 0
    assert max(cycles) == 5 * 9 * 4 and min(cycles) == 5
    inst.set_nodeattr("PE", 2)
    inst.set_nodeattr("SIMD", 3)
    with pytest.raises(UnsupportedNodeError, match="SIMD=3 needs PE = 4"):
        inst.get_exp_cycles()


# --- the build -----------------------------------------------------------------------------------------------------
def test_depthwise_cnn_builds_and_verifies(tmp_path):
    """Stem conv, depthwise conv, global pooling, head: one partition, every node and the stitched simulation
    verified; the VVAU folded to a whole window per cycle (PE = C, SIMD = K) behind a 2-code sliding window."""
    model = _qonnx(tmp_path, "fp:e3m2", in_shape=(1, 1, 6, 6), channels=4, head=True)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(2, 1, 6, 6)).astype(np.float32))
    folding = tmp_path / "folding.json"
    folding.write_text(json.dumps({"MinifloatVVAU_rtl_0": {"PE": 4, "SIMD": 9},
                                   "MinifloatConvInpGen_rtl_1": {"SIMD": 2}}))
    cfg = BuildConfig(output_dir=str(tmp_path / "build"), verify_input_npy=str(tmp_path / "x.npy"),
                      stop_step="step_verify", folding_config_file=str(folding))
    built = run_build(model, cfg, progress=False)
    assert "MinifloatVVAU_rtl" in ops(built) and "MinifloatMVAU_rtl" in ops(built)
    report = tmp_path / "build" / "report"
    ver = json.loads((report / "verification.json").read_text())
    assert ver["passed"] and ver["stitched_rtlsim"]["passed"] == 2
    assert ver["lowered_vs_hardware"]["differing_codes"] == 0
    assert all(v["failed"] == 0 and v["mode"] == "rtlsim" for v in ver["nodes"].values())
    assert ver["nodes"]["MinifloatVVAU_rtl_0"]["passed"] == 2
    assert json.loads((report / "estimate_layer_cycles.json").read_text())["MinifloatVVAU_rtl_0"] == 36
