"""MinifloatAdd (residual add of two differently scaled streams, exact, requantized): Python == rtlsim, and the
CNN's residual add maps to it with the lowered graph's output unchanged."""

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.util.basic import qonnx_make_model

import custom_ops  # noqa: F401
from compiler.numerics import IntFormat, MinifloatFormat
from passes.infer_hw import InferMinifloatAdd, InferMinifloatMVAU, InferMinifloatThresholding

PART = "xc7z020clg400-1"


def add_model(f0, f1, fo, coeffs, channels, pe, vecs, seed=0):
    rng = np.random.default_rng(seed)
    x0 = f0.values()[rng.integers(0, len(f0.values()), size=(*vecs, channels))].astype(np.float32)
    x1 = f1.values()[rng.integers(0, len(f1.values()), size=(*vecs, channels))].astype(np.float32)
    bound = abs(coeffs[0]) * f0.max_int + abs(coeffs[1]) * f1.max_int
    acc_bits = int(bound).bit_length() + 2
    n = len(fo.values()) - 1
    t = np.sort(rng.integers(-bound, bound + 1, size=(channels, n)), axis=1).astype(np.int64)
    node = helper.make_node("MinifloatAdd", ["x0", "x1", "T"], ["y"], domain="finn.custom_op.fpgadataflow",
                            backend="fpgadataflow", NumChannels=channels, PE=pe, in0DataType=f0.qonnx_name,
                            in1DataType=f1.qonnx_name, coeffs=list(coeffs), accDataType=f"INT{acc_bits}",
                            outputDataType=fo.qonnx_name, numInputVectors=list(vecs))
    shape = [*vecs, channels]
    graph = helper.make_graph([node], "add", [helper.make_tensor_value_info("x0", TensorProto.FLOAT, shape),
                                              helper.make_tensor_value_info("x1", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_initializer("T", t)
    return model.transform(GiveUniqueNodeNames()), x0, x1, t


CASES = [(MinifloatFormat(3, 2), MinifloatFormat(3, 2), MinifloatFormat(3, 2), (7, -3), 8, 2, (3,)),
         (IntFormat(8), MinifloatFormat(4, 3), MinifloatFormat(2, 3), (123456, 789), 6, 3, (2, 2)),
         (MinifloatFormat(2, 1), IntFormat(4), IntFormat(6), (1, 1), 4, 4, (5,))]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].name}+{c[1].name}->{c[2].name}_k{c[3][0]}_{c[3][1]}")
def test_python_equals_reference_and_rtlsim(case):
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
    from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    f0, f1, fo, coeffs, c, pe, vecs = case
    model, x0, x1, t = add_model(f0, f1, fo, coeffs, c, pe, vecs)
    golden = execute_onnx(model, {"x0": x0, "x1": x1})["y"]
    acc = coeffs[0] * np.rint(x0.astype(np.float64) * 2.0 ** -f0.lsb_exponent).astype(np.int64) + \
        coeffs[1] * np.rint(x1.astype(np.float64) * 2.0 ** -f1.lsb_exponent).astype(np.int64)
    assert np.array_equal(golden, fo.values()[(acc[..., None] >= t).sum(-1)])
    hw = model.transform(SpecializeLayers(PART)).transform(PrepareIP(PART, 10.0)).transform(PrepareRTLSim())
    assert hw.graph.node[0].op_type == "MinifloatAdd_rtl"
    hw = hw.transform(SetExecMode("rtlsim"))
    assert np.array_equal(execute_onnx(hw, {"x0": x0, "x1": x1})["y"], golden)


def test_cnn_residual_add_becomes_minifloat_add(tmp_path):
    from test_infer_mvau import _images, _outputs, lowered_zoo

    low = lowered_zoo("cnn", "fp:e3m2", tmp_path)
    hw = low.transform(InferMinifloatMVAU()).transform(InferMinifloatAdd()).transform(InferMinifloatThresholding())
    ops = [n.op_type for n in hw.graph.node]
    assert "ExactAdd" not in ops and ops.count("MinifloatAdd") == 1 and ops.count("MinifloatThresholding") == 1
    for a, b in zip(_outputs(low, _images(3)), _outputs(hw, _images(3))):
        assert np.array_equal(a, b)
    node = [n for n in hw.graph.node if n.op_type == "MinifloatAdd"][0]
    assert getCustomOp(node).get_exp_cycles() > 0


@pytest.mark.parametrize("pe", [1, 4])
def test_constant_operand_is_streamed_from_a_rom(pe):
    """const_in1: the second operand (a positional embedding) is an initializer; Python == rtlsim over two frames,
    and the node has one stream input."""
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
    from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    f = MinifloatFormat(3, 2)
    model, x0, x1, t = add_model(f, f, f, (5, 3), 8, pe, (1, 6))
    model.set_initializer("x1", x1)
    model.graph.input.remove(model.graph.input[1])
    getCustomOp(model.graph.node[0]).set_nodeattr("const_in1", 1)
    golden = execute_onnx(model, {"x0": x0})["y"]
    acc = 5 * np.rint(x0.astype(np.float64) * 2.0 ** -f.lsb_exponent) + 3 * np.rint(x1 * 2.0 ** -f.lsb_exponent)
    assert np.array_equal(golden, f.values()[(acc[..., None] >= t).sum(-1)])
    hw = model.transform(SpecializeLayers(PART)).transform(PrepareIP(PART, 10.0)).transform(PrepareRTLSim())
    inst = getCustomOp(hw.graph.node[0])
    assert inst.n_input_streams() == 1 and [n for n, _ in inst.get_verilog_top_module_intf_names()["s_axis"]] == \
        ["in0_V"]
    hw = hw.transform(SetExecMode("rtlsim"))
    for seed in range(2):
        x = f.values()[np.random.default_rng(seed).integers(0, len(f.values()), size=x0.shape)].astype(np.float32)
        assert np.array_equal(execute_onnx(hw, {"x0": x})["y"], execute_onnx(model, {"x0": x})["y"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].name}+{c[1].name}->{c[2].name}_k{c[3][0]}_{c[3][1]}")
def test_cppsim_bit_exact(case):
    from test_thresholding import _cppsim

    f0, f1, fo, coeffs, c, pe, vecs = case
    model, x0, x1, t = add_model(f0, f1, fo, coeffs, c, pe, vecs)
    want = execute_onnx(model, {"x0": x0, "x1": x1})["y"]
    assert np.array_equal(execute_onnx(_cppsim(model), {"x0": x0, "x1": x1})["y"], want)


def test_constant_operand_cppsim():
    from test_thresholding import _cppsim

    f = MinifloatFormat(3, 2)
    model, x0, x1, t = add_model(f, f, f, (5, 3), 8, 2, (1, 6))
    model.set_initializer("x1", x1)
    model.graph.input.remove(model.graph.input[1])
    getCustomOp(model.graph.node[0]).set_nodeattr("const_in1", 1)
    assert np.array_equal(execute_onnx(_cppsim(model), {"x0": x0})["y"], execute_onnx(model, {"x0": x0})["y"])


def acc_output_model(case):
    """``add_model`` with ``noActivation = 1``: no thresholds, the accumulator (``accDataType``) is the output."""
    f0, f1, _, coeffs, c, pe, vecs = case
    model, x0, x1, _ = add_model(f0, f1, f0, coeffs, c, pe, vecs)
    node = model.graph.node[0]
    del node.input[2]
    inst = getCustomOp(node)
    inst.set_nodeattr("noActivation", 1)
    inst.set_nodeattr("outputDataType", inst.get_nodeattr("accDataType"))
    acc = coeffs[0] * np.rint(x0.astype(np.float64) * 2.0 ** -f0.lsb_exponent).astype(np.int64) + \
        coeffs[1] * np.rint(x1.astype(np.float64) * 2.0 ** -f1.lsb_exponent).astype(np.int64)
    return model, x0, x1, acc


#: plus a sum wider than 32 bits (a ViT's residual add: INT35..INT37)
ACC_CASES = CASES + [(MinifloatFormat(3, 2), MinifloatFormat(3, 2), None, (3**20, -(5**12)), 8, 2, (3,))]


@pytest.mark.parametrize("case", ACC_CASES, ids=lambda c: f"{c[0].name}+{c[1].name}_k{c[3][0]}_{c[3][1]}")
def test_accumulator_output_python_rtlsim_cppsim(case):
    """noActivation = 1: the exact sum K0 * a + K1 * b is the output (its requantizer stands alone);
    Python == rtlsim == cppsim, and the estimate drops the threshold stage."""
    from test_thresholding import _cppsim

    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
    from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    model, x0, x1, acc = acc_output_model(case)
    inputs = {"x0": x0, "x1": x1}
    golden = execute_onnx(model, inputs)["y"]
    assert np.array_equal(golden, acc)
    inst = getCustomOp(model.graph.node[0])
    assert inst.threshold_input() is None and inst.n_thresholds() == 0
    assert inst.lut_estimation() == 3 * inst.get_nodeattr("PE") * inst.acc_bits()
    hw = model.transform(SpecializeLayers(PART)).transform(PrepareIP(PART, 10.0)).transform(PrepareRTLSim())
    assert hw.graph.node[0].op_type == "MinifloatAdd_rtl"
    assert np.array_equal(execute_onnx(hw.transform(SetExecMode("rtlsim")), inputs)["y"], golden)
    assert np.array_equal(execute_onnx(_cppsim(model), inputs)["y"], golden)
