"""Weights off chip: which weight matrices stay in external memory (DDR/HBM), and the memory's bound on throughput.

An op that is ``external_weights_capable()`` (custom_ops/capabilities.py; the MinifloatMVAU, as FINN's MVAU with
``mem_mode = "external"``) can read its weights from external memory in every frame instead of embedding them; it
then reads ``external_weight_bits()`` bits per frame (the MVAU: the whole matrix once per input vector, FINN's
external weight stream). All such nodes of a design share the board's external memory (``compiler.boards.Board``
``memory_GBps``, the peak bandwidth), so a frame takes at least

    memory cycles per frame = ceil(sum over the nodes of their external weight bits per frame / memory bits per cycle)
    memory bits per cycle   = bandwidth [GB/s] * 8 * clock period [ns]

and the design's throughput is ``1e9 / (clk_ns * max(slowest node's cycles, memory cycles))`` (``memory_bound``).
While the memory is the bound, each node gets the share of the bandwidth its bits per frame are of the total. The
folding pass folds no node faster than the memory cycles (passes/resource_folding.py), and the reports name the
memory when it is the bound (compiler/reports.py).

``SetWeightsOffChip(board, mode)`` decides which nodes stream their weights (the config field
``weights_off_chip``):

* "never": every matrix embedded (``mem_mode = "internal_embedded"``);
* "always": every capable node streams its weights;
* "auto": the embedded weights must fit ``utilization`` of the board's block RAM and UltraRAM, each node counted at
  the fewest blocks any legal folding of it needs (its ``min_weight_blocks()``: the op's own BRAM/URAM estimates,
  aspect ratios included, in the memory its ``ram_style`` names); while a block resource overflows, the next capable
  node holding weights in it streams them, in the order of the least memory traffic per on-chip bit saved (a
  node's traffic is its matrix times its reads per frame, ``external_reads_per_frame``, so fewest reads first) and,
  among equals, the largest matrix first; then, last moved first, a streamed node whose blocks fit again after all
  (a later, larger move made room) goes back on chip. A design whose weights fit is left as it is (nodes already
  set to external stay external), and so is every design on a board without a bandwidth figure (the folding then
  reports what does not fit). The UltraRAM placement (compiler/steps.py ``_large_weights_to_uram``) comes first.

The choice is recorded in the model (``metadata_props["minifinn_weights_off_chip"]``, ``weights_off_chip_record``).
"""

import json
import math

from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from compiler.errors import MinifinnError
from custom_ops.capabilities import HWOpCapabilities

WEIGHTS_OFF_CHIP_MODES = ("auto", "never", "always")
WEIGHTS_OFF_CHIP_KEY = "minifinn_weights_off_chip"


class ExternalMemoryError(MinifinnError):
    """Weights would stream from external memory but the board has no bandwidth figure, or a bad mode."""


def _capable_ops(model):
    """(node, op) of every node whose op can read its weights from external memory."""
    out = []
    for node in model.graph.node:
        inst = getCustomOp(node) if node.domain.startswith("finn.custom_op.fpgadataflow") else None
        if isinstance(inst, HWOpCapabilities) and inst.external_weights_capable():
            out.append((node, inst))
    return out


def external_weight_traffic(model):
    """{node name: external weight bits per frame} of the nodes that stream their weights (graph order)."""
    traffic = {}
    for node in model.graph.node:
        if not node.domain.startswith("finn.custom_op.fpgadataflow"):
            continue
        inst = getCustomOp(node)
        bits = inst.external_weight_bits() if isinstance(inst, HWOpCapabilities) else 0
        if bits:
            traffic[node.name] = int(bits)
    return traffic


def memory_bits_per_cycle(memory_GBps, clk_ns):
    """Bits the external memory delivers per clock cycle at its peak bandwidth."""
    return float(memory_GBps) * 8.0 * float(clk_ns)


def memory_bound(model, memory_GBps, clk_ns, memory=""):
    """The external memory's bound on the frame rate (module docstring), or None when no node streams weights:
    {"bits_per_frame", "bytes_per_frame", "bandwidth_GBps", "memory", "bits_per_cycle", "cycles_per_frame", "fps",
    "describe" ("external weights: X MB/frame at Y GB/s"), "nodes": {name: {"bits_per_frame", "share"}}}."""
    traffic = external_weight_traffic(model)
    if not traffic:
        return None
    if not memory_GBps:
        raise ExternalMemoryError(
            f"node(s) {', '.join(list(traffic)[:4])} stream their weights from external memory, but the board has no "
            "external memory bandwidth figure (compiler/boards.py); keep the weights on chip (weights_off_chip = "
            "'never') or pick a board with one")
    total = sum(traffic.values())
    per_cycle = memory_bits_per_cycle(memory_GBps, clk_ns)
    cycles = int(math.ceil(total / per_cycle))
    return {
        "bits_per_frame": total, "bytes_per_frame": total / 8.0, "bandwidth_GBps": float(memory_GBps),
        "memory": memory, "bits_per_cycle": per_cycle, "cycles_per_frame": cycles,
        "fps": 1e9 / (float(clk_ns) * cycles),
        "describe": f"external weights: {total / 8e6:,.2f} MB/frame at {float(memory_GBps):g} GB/s"
                    + (f" ({memory})" if memory else ""),
        "nodes": {name: {"bits_per_frame": bits, "share": bits / total} for name, bits in traffic.items()},
    }


BLOCK_RESOURCES = ("BRAM_18K", "URAM")


def _blocks(model, known=None):
    """{node name: min_weight_blocks()} of every op with embedded weights (``known``: those already asked)."""
    out = {}
    for node in model.graph.node:
        if node.domain.startswith("finn.custom_op.fpgadataflow"):
            inst = getCustomOp(node)
            if isinstance(inst, HWOpCapabilities) and inst.weight_memory_bits():
                out[node.name] = (known or {}).get(node.name) or inst.min_weight_blocks()
    return out


def _total(blocks):
    return {k: sum(b[k] for b in blocks.values()) for k in BLOCK_RESOURCES}


def embedded_weight_bits(model):
    """Bits of on-chip weight memory of every op (``weight_memory_bits``)."""
    total = 0
    for node in model.graph.node:
        if node.domain.startswith("finn.custom_op.fpgadataflow"):
            inst = getCustomOp(node)
            total += inst.weight_memory_bits() if isinstance(inst, HWOpCapabilities) else 0
    return int(total)


class SetWeightsOffChip(Transformation):
    """Choose which capable nodes read their weights from external memory (module docstring).

    ``board``: a ``compiler.boards.Board`` (block RAM / UltraRAM budget, memory bandwidth); ``mode``: "auto" |
    "never" | "always"; ``utilization``: the share of each block resource the embedded weights may take under
    "auto" (the folding's limit, 0.8 by default). ``self.record`` (also in the model's metadata) lists mode, the
    limit and the fewest blocks the embedded weights need before and after, their bits before and after, and the
    streaming nodes with their bits per frame."""

    def __init__(self, board, mode="auto", utilization=0.8):
        super().__init__()
        if mode not in WEIGHTS_OFF_CHIP_MODES:
            raise ExternalMemoryError(f"weights_off_chip {mode!r} is not one of {WEIGHTS_OFF_CHIP_MODES}")
        self.board, self.mode, self.utilization = board, mode, float(utilization)
        self.record = None

    def apply(self, model):
        ops = _capable_ops(model)
        before = embedded_weight_bits(model)
        limit = {k: self.utilization * self.board.resources.get(k, 0) for k in BLOCK_RESOURCES}
        blocks = _blocks(model)
        need_before = _total(blocks)
        if self.mode in ("never", "always"):
            for _, inst in ops:
                inst.set_external_weights(self.mode == "always")
        elif self.board.memory_GBps:  # "auto" on a board without a bandwidth figure leaves the weights as they are
            need = dict(need_before)
            order = sorted((inst for _, inst in ops if inst.onnx_node.name in blocks),
                           key=lambda i: (i.external_reads_per_frame(), -i.weight_memory_bits(), i.onnx_node.name))
            moved = []
            for inst in order:
                over = [k for k in BLOCK_RESOURCES if need[k] > limit[k]]
                if not over:
                    break
                held = blocks[inst.onnx_node.name]
                if any(held[k] for k in over):
                    inst.set_external_weights(True)
                    moved.append(inst)
                    need = {k: need[k] - held[k] for k in BLOCK_RESOURCES}
            for inst in reversed(moved):  # back on chip what fits after all (a later, larger move made room)
                held = blocks[inst.onnx_node.name]
                if all(need[k] + held[k] <= limit[k] for k in BLOCK_RESOURCES):
                    inst.set_external_weights(False)
                    need = {k: need[k] + held[k] for k in BLOCK_RESOURCES}
        traffic = external_weight_traffic(model)
        if traffic and not self.board.memory_GBps:
            raise ExternalMemoryError(
                f"weights_off_chip = {self.mode!r}: {len(traffic)} node(s) would stream their weights from external "
                f"memory, but {self.board.name} has no external memory bandwidth figure in compiler/boards.py; use "
                "weights_off_chip = 'never' or a board with one (e.g. U250, Pynq-Z2)")
        self.record = {"mode": self.mode, "utilization": self.utilization, "limit_blocks": limit,
                       "min_blocks_before": need_before, "min_blocks": _total(_blocks(model, blocks)),
                       "embedded_bits_before": before, "embedded_bits": embedded_weight_bits(model),
                       "external": traffic, "memory_GBps": self.board.memory_GBps, "memory": self.board.memory}
        model.set_metadata_prop(WEIGHTS_OFF_CHIP_KEY, json.dumps(self.record))
        return model, False


def weights_off_chip_record(model):
    """The record ``SetWeightsOffChip`` stored in the model, or None."""
    text = model.get_metadata_prop(WEIGHTS_OFF_CHIP_KEY)
    return json.loads(text) if text else None
