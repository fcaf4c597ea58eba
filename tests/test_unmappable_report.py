"""The unmappable-node report names the root causes first: one line per cause, the downstream nodes apart, every
node listed only when few (the full list goes to the error's rows and build.log)."""

import onnx.helper as oh
import pytest
from onnx import TensorProto
from qonnx.core.modelwrapper import ModelWrapper

from compiler.errors import UnmappableNodesError
from passes.convert_to_hw import MAX_LISTED_NODES, ConvertToHardware, root_causes, unmappable_message, unmappable_nodes


def _chain(n_sin):
    """x -> Cos (root) -> n_sin x Sin (downstream) -> y, and a second root Tan on x added to the end."""
    nodes = [oh.make_node("Cos", ["x"], ["t0"], name="Cos_0")]
    for i in range(n_sin):
        nodes.append(oh.make_node("Sin", [f"t{i}"], [f"t{i + 1}"], name=f"Sin_{i}"))
    nodes.append(oh.make_node("Tan", ["x"], ["u"], name="Tan_0"))
    nodes.append(oh.make_node("Add", [f"t{n_sin}", "u"], ["y"], name="Add_0"))
    vi = lambda name: oh.make_tensor_value_info(name, TensorProto.FLOAT, [1, 4])  # noqa: E731
    graph = oh.make_graph(nodes, "chain", [vi("x")], [vi("y")])
    return ModelWrapper(oh.make_model(graph))


def test_roots_come_first_with_counts():
    model = _chain(3)
    causes = root_causes(model, unmappable_nodes(model))
    roots = [(op, count, first) for op, _, count, first, root in causes if root]
    downstream = {op: count for op, _, count, _, root in causes if not root}
    assert sorted(roots) == [("Cos", 1, "Cos_0"), ("Tan", 1, "Tan_0")]
    assert downstream == {"Sin": 3, "Add": 1}


def test_a_long_list_is_summarized_and_kept_on_the_error():
    model = _chain(MAX_LISTED_NODES + 5)
    with pytest.raises(UnmappableNodesError) as info:
        model.transform(ConvertToHardware())
    msg = str(info.value)
    assert msg.index("Root causes") < msg.index("Cos x1 (first: Cos_0)") < msg.index("Downstream")
    assert f"Sin x{MAX_LISTED_NODES + 5} (first: Sin_0)" in msg and "Sin_7" not in msg  # summarized
    assert len(info.value.rows) == MAX_LISTED_NODES + 8 and ("Sin_7", "Sin") in [r[:2] for r in info.value.rows]


def test_a_short_list_names_every_node():
    model = _chain(2)
    msg = unmappable_message(model, unmappable_nodes(model))
    assert all(f"  - {n} (" in msg for n in ("Cos_0", "Sin_0", "Sin_1", "Tan_0", "Add_0"))
