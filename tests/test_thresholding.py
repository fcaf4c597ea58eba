"""MinifloatThresholding (standalone requantizer): Python == rtlsim == cppsim bit for bit for the threshold styles
(parallel comparators and binary search) on random sorted thresholds (duplicates included); conversion from the
lowered graph. The conversion style: tests/test_requant_styles.py."""

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
from passes.infer_hw import InferMinifloatMVAU, InferMinifloatThresholding

PART = "xc7z020clg400-1"


def threshold_model(fo, channels, pe, acc_bits, vecs, signs=(), seed=0, style="parallel"):
    rng = np.random.default_rng(seed)
    lim = 2 ** (acc_bits - 1)
    acc = rng.integers(-lim, lim, size=(*vecs, channels)).astype(np.int64)
    n = len(fo.values()) - 1
    t = np.sort(rng.integers(-lim, lim + 1, size=(channels, n)), axis=1).astype(np.int64)
    node = helper.make_node("MinifloatThresholding", ["acc", "T"], ["y"], domain="finn.custom_op.fpgadataflow",
                            backend="fpgadataflow", NumChannels=channels, PE=pe, inputDataType=f"INT{acc_bits}",
                            outputDataType=fo.qonnx_name, numInputVectors=list(vecs), requantStyle=style,
                            **({"channel_signs": list(signs)} if signs else {}))
    graph = helper.make_graph([node], "thr", [helper.make_tensor_value_info("acc", TensorProto.FLOAT,
                                                                          [*vecs, channels])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [*vecs, channels])])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_initializer("T", t)
    return model.transform(GiveUniqueNodeNames()), acc, t


CASES = [(MinifloatFormat(3, 2), 8, 2, 12, (1, 5), ()), (IntFormat(4), 6, 3, 9, (4,), (1, -1, 1, 1, -1, -1)),
         (MinifloatFormat(4, 3), 4, 4, 20, (2, 3), (-1,)), (IntFormat(3, signed=False), 5, 1, 6, (7,), ())]


@pytest.mark.parametrize("style", ["parallel", "bsearch"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].name}_c{c[1]}_pe{c[2]}_acc{c[3]}")
def test_python_equals_reference_and_rtlsim(case, style):
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.prepare_rtlsim import PrepareRTLSim
    from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    fo, c, pe, bits, vecs, signs = case
    model, acc, t = threshold_model(fo, c, pe, bits, vecs, signs, style=style)
    golden = execute_onnx(model, {"acc": acc})["y"]
    s = np.array((list(signs) * c if len(signs) == 1 else list(signs)) or [1] * c)
    want = fo.values()[((acc * s)[..., None] >= t).sum(-1)]
    assert np.array_equal(golden, want)
    hw = model.transform(SpecializeLayers(PART)).transform(PrepareIP(PART, 10.0)).transform(PrepareRTLSim())
    assert hw.graph.node[0].op_type == "MinifloatThresholding_rtl"
    hw = hw.transform(SetExecMode("rtlsim"))
    assert np.array_equal(execute_onnx(hw, {"acc": acc})["y"], golden)
    assert getCustomOp(hw.graph.node[0]).get_exp_cycles() == int(np.prod(vecs)) * c // pe


def test_cnn_residual_and_pool_requantizers_become_thresholding_ops(tmp_path):
    from test_infer_mvau import _images, _outputs, lowered_zoo

    low = lowered_zoo("cnn", "fp:e3m2", tmp_path)
    hw = low.transform(InferMinifloatMVAU()).transform(InferMinifloatThresholding())
    ops = [n.op_type for n in hw.graph.node]
    assert "MinifloatThreshold" not in ops and ops.count("MinifloatThresholding") == 2
    for a, b in zip(_outputs(low, _images(3)), _outputs(hw, _images(3))):
        assert np.array_equal(a, b)


def _cppsim(model):
    from finn.transformation.fpgadataflow.compile_cppsim import CompileCppSim
    from finn.transformation.fpgadataflow.prepare_cppsim import PrepareCppSim
    from finn.transformation.fpgadataflow.set_exec_mode import SetExecMode
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    for node in model.graph.node:
        getCustomOp(node).set_nodeattr("preferred_impl_style", "hls")
    hw = model.transform(SpecializeLayers(PART))
    assert all(n.op_type.endswith("_hls") for n in hw.graph.node)
    return hw.transform(PrepareCppSim()).transform(CompileCppSim()).transform(SetExecMode("cppsim"))


@pytest.mark.parametrize("style", ["parallel", "bsearch"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].name}_c{c[1]}_pe{c[2]}_acc{c[3]}")
def test_cppsim_bit_exact(case, style):
    fo, c, pe, bits, vecs, signs = case
    model, acc, t = threshold_model(fo, c, pe, bits, vecs, signs, style=style)
    assert np.array_equal(execute_onnx(_cppsim(model), {"acc": acc})["y"], execute_onnx(model, {"acc": acc})["y"])
