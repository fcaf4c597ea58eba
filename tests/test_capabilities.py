"""Ops declare what they can do (custom_ops/capabilities.py); the folding pass, the conversion step and the reports
ask them instead of keeping lists of op names."""

import ast
from pathlib import Path

import pytest
from onnx import helper
from qonnx.custom_op.registry import getCustomOp

import finn.custom_op.fpgadataflow as fpgadataflow_registry
import finn.custom_op.fpgadataflow.hls as hls_registry
import finn.custom_op.fpgadataflow.rtl as rtl_registry
from custom_ops import HW_OPS, MinifloatLayerNorm_rtl
from custom_ops.capabilities import HWOpCapabilities, divisors
from passes.convert_to_hw import UNKNOWN_REASON, unmappable_nodes, unmapped_reasons
from passes.resource_folding import folding_space

ROOT = Path(__file__).resolve().parent.parent


def test_every_op_is_registered_and_names_its_backends():
    for op in HW_OPS:
        assert issubclass(op, HWOpCapabilities)
        registry = {"hls": hls_registry, "rtl": rtl_registry}.get(op.__name__[-3:], fpgadataflow_registry)
        assert registry.custom_op[op.__name__] is op
        assert op.backends() == ("hls", "rtl"), op.__name__
        assert op.base_op_type() in fpgadataflow_registry.custom_op


def _layernorm_node(channels=12, pe=1):
    node = helper.make_node("MinifloatLayerNorm_rtl", ["x", "t"], ["y"], domain="finn.custom_op.fpgadataflow.rtl",
                            backend="fpgadataflow", name="ln", NumChannels=channels, PE=pe,
                            inputDataType="FLOAT<3,2,3>", outputDataType="FLOAT<3,2,3>", epsTerm=1,
                            numInputVectors=[1, 5])
    return node


def test_layernorm_rtl_folds_by_pe_over_its_channels():
    """The flagship's LayerNorm is the _rtl variant; it must be foldable like the _hls one."""
    node = _layernorm_node()
    inst = getCustomOp(node)
    assert isinstance(inst, MinifloatLayerNorm_rtl)
    space = folding_space(node, inst)
    assert sorted({f["PE"] for f in space}) == divisors(12)  # with the reciprocal-square-root units per PE
    assert all(set(f) == {"PE", "rsqrtUnits"} for f in space)
    cycles = []
    for attrs in space:
        inst.set_nodeattr("PE", attrs["PE"])
        inst.set_nodeattr("rsqrtUnits", attrs["rsqrtUnits"])
        cycles.append(inst.get_exp_cycles())
    fastest = [min(c for f, c in zip(space, cycles) if f["PE"] == pe) for pe in divisors(12)]
    assert fastest == sorted(fastest, reverse=True) and min(cycles) < cycles[0]


def test_folding_pass_asks_the_op():
    class NarrowLayerNorm(MinifloatLayerNorm_rtl):
        def folding_space(self):
            return [{"PE": 1}, {"PE": 3}]

    inst = NarrowLayerNorm(_layernorm_node())
    assert folding_space(inst.onnx_node, inst) == [{"PE": 1}, {"PE": 3}]


def test_requantizer_and_threshold_input_come_from_the_op():
    inst = getCustomOp(_layernorm_node())
    assert inst.threshold_input() == 1 and inst.requantizer() == "thresholds"
    node = helper.make_node("MinifloatMaxPool_rtl", ["x"], ["y"], domain="finn.custom_op.fpgadataflow.rtl",
                            backend="fpgadataflow", name="mp", NumChannels=4, IFMDim=[4, 4], PE=1, PoolDim=[2, 2],
                            inputDataType="FLOAT<3,2,3>", outputDataType="FLOAT<3,2,3>")
    mp = getCustomOp(node)
    assert mp.threshold_input() is None and mp.requantizer() == "none" and mp.weight_memory_bits() == 0


def test_unmapped_reasons_are_declared_by_the_conversion_passes():
    reasons = unmapped_reasons()
    for op in ("ExactMatMul", "ExactAdd", "MinifloatThreshold", "Im2Col", "Transpose", "Softmax",
               "LayerNormalization", "Gelu", "MaxPoolNHWC", "ExactSumPool"):
        assert op in reasons and reasons[op] != UNKNOWN_REASON
    x = helper.make_tensor_value_info("x", 1, [1, 4])
    y = helper.make_tensor_value_info("y", 1, [1, 4])
    graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["s"], name="sm"),
                               helper.make_node("Celu", ["s"], ["y"], name="odd")], "g", [x], [y])
    from qonnx.core.modelwrapper import ModelWrapper

    rows = unmappable_nodes(ModelWrapper(helper.make_model(graph)))
    assert rows == [("sm", "Softmax", reasons["Softmax"]), ("odd", "Celu", UNKNOWN_REASON)]


@pytest.mark.parametrize("module", ["passes/resource_folding.py", "compiler/steps.py", "compiler/reports.py",
                                    "passes/shared_thresholds.py", "compiler/dse/cost.py"])
def test_no_list_of_minifinn_op_names_outside_the_ops(module):
    """String constants naming minifinn ops with a backend suffix (``"MinifloatX_rtl"``) are what the capabilities
    replace; none may stand in the modules that fold, map, report or cost the graph."""
    tree = ast.parse((ROOT / module).read_text())
    names = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
             and n.value.startswith("Minifloat") and n.value.endswith(("_hls", "_rtl"))]
    assert names == []
