"""The lowering walk: one pass over a legalized graph in topological order that replaces its nodes by exact integer
ops, dispatching every node to the handler of its op type (``passes.lowering.handlers.HANDLERS``).

The walker keeps, for every tensor of the legalized graph, what the lowered graph holds for it (a state of
``passes.lowering.state``), names and emits the new nodes and constants, and provides the conversions handlers
share: ``materialize`` (a float tensor equal to a state, via ``Dequantize``), ``to_aff`` (values as an accumulator)
and ``float_island`` (a node run as in QONNX on dequantized inputs: nodes without handler, and nodes their handler
refuses). At the end every graph output is materialized and the map from each activation quantizer of the original
graph to its values tensor is stored in the model's metadata (``LOWERED_MAP_KEY``, read by passes/compare.py).
"""

import copy
import json
from fractions import Fraction

import numpy as np
import onnx.helper as helper

from compiler.errors import UnsupportedNodeError
from compiler.qonnx_formats import format_from_datatype
from custom_ops.general import DOMAIN
from passes.datatypes import accumulator_range
from passes.lowering.handler import Refused, where
from passes.lowering.handlers import HANDLERS
from passes.lowering.state import Aff, Flt, Vals, fractions, params_to_acc

LOWERED_MAP_KEY = "minifinn_lowered_quantizers"


class Walker:
    """Lower ``model`` (a legalized ModelWrapper, shapes inferred) in place: ``Walker(model).run()``.

    ``handlers``: {op type: handler(walker, node)}; ``islands`` lists ``(node name, reason)`` of every node that
    stayed a float island, in graph order."""

    def __init__(self, model, handlers=HANDLERS):
        self.model = model
        self.handlers = handlers
        self.nodes = []
        self.state = {}
        self.counter = 0
        self.lowered_map = {}
        self.islands = []

    # --- naming and emission --------------------------------------------------------------------------------------
    def name(self, hint):
        """A fresh tensor / node name: ``<hint>_l<n>``."""
        self.counter += 1
        return f"{hint}_l{self.counter}"

    def emit(self, op_type, inputs, outputs, domain="", **attrs):
        node = helper.make_node(op_type, inputs, outputs, name=self.name(op_type), **attrs)
        if domain:
            node.domain = domain
        self.nodes.append(node)
        return node

    def append(self, node):
        """Emit an existing node (a copy of a legalized node with rewired tensors)."""
        self.nodes.append(node)

    def const(self, hint, array):
        name = self.name(hint)
        self.model.set_initializer(name, np.asarray(array))
        return name

    def annotate(self, tensor, shape, datatype=None):
        """Shape (and qonnx DataType) of an emitted tensor."""
        self.model.set_tensor_shape(tensor, list(shape))
        if datatype is not None:
            self.model.set_tensor_datatype(tensor, datatype)

    def shape(self, tensor):
        return list(self.model.get_tensor_shape(tensor))

    def init(self, tensor):
        return self.model.get_initializer(tensor) if tensor else None

    # --- states -------------------------------------------------------------------------------------------------
    def get(self, tensor):
        """The state of a tensor of the legalized graph; a constant is ``Vals`` (scale 1) when its DataType is a
        minifloat or an integer of at most 8 bits (legalized weights), else ``Flt``."""
        if tensor in self.state:
            return self.state[tensor]
        value = self.init(tensor)
        if value is not None:
            dt = self.model.get_tensor_datatype(tensor)
            if dt.name.startswith("FLOAT<") or (dt.is_integer() and dt.bitwidth() <= 8 and dt.name != "BIPOLAR"):
                st = Vals(tensor, format_from_datatype(dt.name, tensor), fractions(np.float64(1.0)), const=True)
            else:
                st = Flt(tensor)
            self.state[tensor] = st
            return st
        return Flt(tensor)

    def acc_range(self, tensor):
        """(lo, hi) of an accumulator produced by an exact op emitted in this walk (data-aware for constant weights,
        as ``passes.datatypes.accumulator_range``), else None. Thresholds computed with it are clipped to it at once:
        the same values ``ClipThresholdsToAccumulator`` leaves afterwards, without requiring a threshold far outside
        the range of a wide (5-6 exponent bit) accumulator to be representable in int64 first."""
        producer = next((n for n in reversed(self.nodes) if tensor in n.output), None)
        return None if producer is None else accumulator_range(self.model, tensor, producer)

    # --- conversions --------------------------------------------------------------------------------------------
    def apply_layout(self, tensor, layout):
        """Apply an Aff's pending data-movement ops to ``tensor``; the name of the result."""
        for node, pre, post in layout:
            new = copy.deepcopy(node)
            out = self.name(tensor + "_" + node.op_type.lower())
            new.input[0] = tensor
            new.output[0] = out
            new.name = self.name(node.name)
            self.nodes.append(new)
            self.model.set_tensor_shape(out, list(post))
            tensor = out
        return tensor

    def materialize(self, st, out=None):
        """A float tensor equal to the state's value (QONNX' fp32 value for Vals), named ``out`` if given."""
        if isinstance(st, Flt):
            if out is not None:
                self.emit("Identity", [st.name], [out])
                return out
            return st.name
        if isinstance(st, Vals):
            scale = np.asarray(st.scale.astype(np.float64), dtype=np.float32)
            target = out or self.name(st.name + "_deq")
            self.emit("Dequantize", [st.name, self.const("deq_scale", scale)], [target], domain=DOMAIN,
                      input_kind="values")
            return target
        a, b = params_to_acc(st)
        a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        tmp = self.name(st.acc + "_deq") if st.layout or st.clip is not None or out is None else out
        self.emit("Dequantize", [st.acc, self.const("deq_a", a64), self.const("deq_b", b64)], [tmp],
                  domain=DOMAIN, input_kind="accumulator", relu=int(st.relu))
        if st.clip is not None:
            bounds = [self.const("clip_bound", np.float32(v)) if v is not None else "" for v in st.clip]
            clipped = self.name(st.acc + "_clip")
            self.emit("Clip", [tmp] + bounds, [clipped])
            tmp = clipped
        res = self.apply_layout(tmp, st.layout)
        if out is not None and res != out:
            self.emit("Identity", [res], [out])
            return out
        return res

    def to_aff(self, st, node):
        """An Aff for a Vals (acc = its integers, via ExactAdd with coefficient 1); an Aff unchanged."""
        if isinstance(st, Aff):
            return st
        if not isinstance(st, Vals):
            raise UnsupportedNodeError(f"{where(node)}: internal: expected quantized values")
        acc = self.name(st.name + "_int")
        self.emit("ExactAdd", [st.name], [acc], domain=DOMAIN, formats=[st.fmt.qonnx_name], coeffs=[1])
        a = st.scale * Fraction(2) ** st.fmt.lsb_exponent
        return Aff(acc, self.shape(st.name) if not st.const else list(self.init(st.name).shape), a,
                   fractions(np.float64(0.0)))

    def float_island(self, node, reason):
        """Run ``node`` as in QONNX on dequantized inputs; its outputs become float tensors."""
        self.islands.append((node.name, reason))
        new = copy.deepcopy(node)
        for i, tensor in enumerate(node.input):
            if not tensor:
                continue
            st = self.get(tensor)
            if self.init(tensor) is not None and not isinstance(st, Vals):
                continue  # a float constant
            new.input[i] = self.materialize(st)
        self.nodes.append(new)
        for out in node.output:
            self.state[out] = Flt(out)

    # --- the walk -----------------------------------------------------------------------------------------------
    def visit(self, node):
        """Lower one node: its handler, or a float island when there is none or it refuses."""
        handler = self.handlers.get(node.op_type)
        if handler is None:
            self.float_island(node, f"{where(node)}: no exact lowering of {node.op_type}")
            return
        try:
            handler(self, node)
        except Refused as exc:
            self.float_island(node, str(exc))

    def run(self):
        """Lower every node (the graph must be topologically sorted), materialize the outputs, replace the graph's
        nodes by the emitted ones and record the quantizer map."""
        graph = self.model.graph
        for node in list(graph.node):
            self.visit(node)
        for out in graph.output:
            st = self.get(out.name)
            if isinstance(st, Flt) and st.name == out.name:
                continue
            self.materialize(st, out=out.name)
        del graph.node[:]
        graph.node.extend(self.nodes)
        self.model.set_metadata_prop(LOWERED_MAP_KEY, json.dumps(self.lowered_map, sort_keys=True))
