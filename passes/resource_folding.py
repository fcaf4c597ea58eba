"""SetFoldingResourceAware: PE/SIMD folding that meets a throughput target within a board's resource budget.

FINN's ``SetFolding`` folds every layer to a cycles-per-frame target and ignores resources. This pass chooses each
layer's folding from the layer's **own** estimates (``getCustomOp(node).get_exp_cycles()`` and
``node_res_estimation(fpgapart)``) for every legal folding of the layer, and keeps the whole design inside
``utilization * budget`` for each resource (LUT, FF, BRAM_18K, URAM, DSP).

Foldable layers (the legal values are the divisors, as in FINN's ``SetFolding``):

* minifinn's ops declare their own folding space (``folding_space()``, custom_ops/capabilities.py): the MVAU every
  (PE | MH, SIMD | MW) pair, the channel and pixel stream ops PE (the sliding window SIMD) over their channels;
* FINN's ops by FINN's rules: ``MVAU_{hls,rtl}`` every pair within FINN's weight-stream limits (SIMD * weight bits <=
  ``mvau_wwidth_max`` unless SIMD = 1; the ``internal_decoupled`` HLS weight stream <= ``MAX_ALLOWED_AP_INT_W``),
  the ops FINN's ``SetFolding`` folds by PE (e.g. ``Thresholding``, ``DuplicateStreams``, ``GlobalAccPool``,
  ``LabelSelect``, elementwise binary ops) PE | channels, ``FMPadding`` and non-depthwise
  ``ConvolutionInputGenerator`` SIMD | channels.

Every other hardware node (e.g. FINN's depthwise VVAU/pooling with their tied sliding-window generator, FIFOs, width
converters) keeps its folding; its cycles and resources still count against the target and the budget, and it is
listed under ``not_folded`` in the result.

Cost of a folding = sum over resources of ``estimate / (utilization * budget)`` (the share of the usable board it
takes; a resource the board lacks but the folding needs costs infinity). Modes:

* ``target_fps`` given: the target is met when ``max_cycles <= 1e9 / (clk_ns * target_fps)``, i.e. the estimated
  FPS ``1e9 / (clk_ns * max_cycles)`` of the slowest layer is >= the target. Every layer takes its cheapest folding
  that meets the target cycles (layers are independent, so when one resource dominates the cost this is the
  cheapest design that meets the target); if the sum overflows a resource, the weight of that resource in the cost
  is raised and the choice repeated (up to ``max_reweights`` times), trading e.g. BRAM for LUTs. If no layer choice fits,
  ``FoldingBudgetError`` gives the needed vs available amount of each overflowing resource and the FPS the fastest
  fitting folding reaches. A layer that cannot meet the target even fully unfolded gives
  ``FoldingTargetUnreachableError`` with the best reachable FPS.
* no target: the fastest folding that fits. The achieved throughput is set by the bottleneck's cycle count, which
  is one of the layers' option cycle counts; for each such count ``c`` in increasing order (from the slowest layer's
  fastest option) every layer takes its cheapest folding with cycles <= ``c`` (as in target mode, with the same
  reweighting), and the first ``c`` whose picks fit wins. Every layer is then no faster than the pipeline needs
  (FINN's two-pass relaxation built in). When one resource dominates the cost (LUTs for ``MinifloatMVAU``) this is
  the fastest fitting folding exactly: the cheapest picks at ``c`` fit if any folding with bottleneck ``c`` does.
  A greedy loop ("speed up the bottleneck by its next divisor while the total fits") is not enough: it stops when
  the bottleneck's next step does not fit, although a cheaper folding of the same speed (another PE x SIMD split) or
  a rebalancing of the other layers would (tests/test_resource_folding.py compares the scan with exhaustive
  search). If even the cheapest folding of every layer (normally fully folded, PE = SIMD = 1) does not fit,
  ``FoldingBudgetError`` says by how much.

External weights (``mem_mode = "external"``, passes/external_weights.py): every frame streams the weights of those
nodes through the board's external memory, which bounds a frame to at least ``memory cycles`` (``memory_bound``)
whatever the folding. No layer is folded faster than that (the fastest-fit scan starts there), a ``target_fps``
beyond it is ``FoldingTargetUnreachableError`` naming the memory, and the estimated FPS is that of
``max(slowest layer, memory cycles)``.

``utilization`` defaults to 0.8 (FINN's default resource target leaves room for FIFOs, data-width converters and
the shell). Estimates FINN's ops do not provide (e.g. FINN's MVAU has no FF estimate) count as 0.

Result: the chosen foldings are set on the nodes, ``cycles_estimate`` is annotated (FINN's ``AnnotateCycles``), and
``self.result`` (also JSON in ``model.metadata_props["minifinn_folding"]``) records mode, target, clock, estimated
FPS, max cycles and bottleneck node, the external memory's bound (``memory``, None without external weights) and
``frame_cycles`` / ``bottleneck`` (the memory's description when it is the bound), per-layer folding/cycles/resources,
totals, budget, limit and utilization.
"""

import json
import math

from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from compiler.boards import get_board
from compiler.errors import MinifinnError
from compiler.finn_env import ensure_finn_offline
from custom_ops.capabilities import HWOpCapabilities, divisors
from finn.transformation.fpgadataflow.annotate_cycles import AnnotateCycles
from finn.transformation.fpgadataflow.set_folding import ELEMENTWISE_BINARY_OPS
from finn.util.basic import MAX_ALLOWED_AP_INT_W
from passes.external_weights import memory_bound

RESOURCES = ("LUT", "FF", "BRAM_18K", "URAM", "DSP")
FOLDING_METADATA_KEY = "minifinn_folding"

#: FINN's ops (their classes do not describe their folding): FINN SetFolding's rules
FINN_MVAU_OPS = ("MVAU_hls", "MVAU_rtl")
FINN_PE_OPS = (
    "DuplicateStreams_hls", "GlobalAccPool_hls", "PWPolyF_rtl", "Thresholding_hls", "Thresholding_rtl",
    "ReplicateStream_hls", "Squeeze_hls", "Unsqueeze_hls", "Reshape_rtl", "LabelSelect_hls",
) + tuple(ELEMENTWISE_BINARY_OPS)
FINN_SIMD_OPS = ("FMPadding_rtl", "FMPadding_Pixel_hls", "ConvolutionInputGenerator_rtl")


class ResourceFoldingError(MinifinnError):
    """No folding meets the request; the message says by how much and what to change."""


class FoldingTargetUnreachableError(ResourceFoldingError):
    """``target_fps`` cannot be reached even with every layer fully unfolded (independent of the board);
    ``fastest_cycles``: the cycles per frame of the slowest layer at its fastest folding."""

    def __init__(self, message, fastest_cycles=None):
        super().__init__(message)
        self.fastest_cycles = fastest_cycles


class FoldingBudgetError(ResourceFoldingError):
    """The design does not fit the board's budget: ``needed`` / ``available`` hold the overflowing resources."""

    def __init__(self, message, needed=None, available=None):
        super().__init__(message)
        self.needed, self.available = dict(needed or {}), dict(available or {})


def _is_hw_node(node):
    return node.domain.startswith("finn.custom_op.fpgadataflow")


def _channels(inst, *names):
    for name in names:
        try:
            return int(inst.get_nodeattr(name))
        except AttributeError:
            continue
    return int(inst.get_normal_output_shape()[-1])


def folding_space(node, inst, mvau_wwidth_max=36):
    """All legal foldings of a node as a list of attribute dicts, or ``None`` when this pass does not fold the op
    (see the module docstring): minifinn's ops answer themselves, FINN's by FINN's rules."""
    if isinstance(inst, HWOpCapabilities):
        return inst.folding_space()
    op = node.op_type
    if op in FINN_MVAU_OPS:
        wbits = inst.get_input_datatype(1).bitwidth()  # as FINN's SetFolding
        space = [{"PE": pe, "SIMD": simd} for pe in divisors(inst.get_nodeattr("MH"))
                 for simd in divisors(inst.get_nodeattr("MW")) if simd == 1 or simd * wbits <= mvau_wwidth_max]
        if op == "MVAU_hls" and inst.get_nodeattr("mem_mode") == "internal_decoupled":
            space = [f for f in space if f["PE"] * f["SIMD"] * wbits <= MAX_ALLOWED_AP_INT_W]
        return space
    if op in FINN_PE_OPS:
        return [{"PE": pe} for pe in divisors(_channels(inst, "NumChannels", "Labels"))]
    if op in FINN_SIMD_OPS:
        if op.startswith("ConvolutionInputGenerator"):
            if inst.get_nodeattr("depthwise"):
                return None  # tied to the PE of its depthwise consumer (FINN's rule)
            return [{"SIMD": s} for s in divisors(inst.get_nodeattr("IFMChannels"))]
        return [{"SIMD": s} for s in divisors(_channels(inst, "NumChannels"))]
    return None


class _Option:
    __slots__ = ("attrs", "cycles", "res")

    def __init__(self, attrs, cycles, res):
        self.attrs, self.cycles, self.res = attrs, cycles, res


class _Layer:
    """One hardware node with its evaluated folding options (or its fixed folding)."""

    def __init__(self, node, fpgapart, mvau_wwidth_max):
        self.node, self.inst = node, getCustomOp(node)
        space = folding_space(node, self.inst, mvau_wwidth_max)
        self.foldable = space is not None
        current = {k: self.inst.get_nodeattr(k) for k in (space[0] if space else {})}
        self.options = []
        for attrs in space or [{}]:
            self.set(attrs)
            est = self.inst.node_res_estimation(fpgapart)
            res = {k: float(est.get(k, 0) or 0) for k in RESOURCES}
            self.options.append(_Option(dict(attrs), int(self.inst.get_exp_cycles()), res))
        self.set(current)

    @property
    def name(self):
        return self.node.name

    def set(self, attrs):
        for key, value in attrs.items():  # PE/SIMD-like counts, or a style name (a requantizer's)
            self.inst.set_nodeattr(key, value if isinstance(value, str) else int(value))


def _fmt_res(v):
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"


class SetFoldingResourceAware(Transformation):
    """Choose PE/SIMD of every foldable hardware node for a throughput target within a resource budget.

    Parameters: ``budget`` {LUT, FF, BRAM_18K, URAM, DSP} (e.g. ``compiler.boards.get_board(name).resources``;
    missing keys count as 0 available), ``clk_ns`` clock period, ``target_fps`` (None: the fastest folding that
    fits), ``utilization`` fraction of the budget the design may use (default 0.8), ``fpgapart`` passed to the ops'
    estimates, ``board_name`` for messages, ``mvau_wwidth_max`` FINN's MVAU weight-stream limit, ``max_reweights``
    iterations of the cost reweighting in target mode, ``memory_GBps`` / ``memory`` the board's external memory
    (bandwidth, description) for nodes with external weights.

    ``apply`` returns ``(model, False)`` with the folding set, or raises ``FoldingTargetUnreachableError`` /
    ``FoldingBudgetError`` (both ``MinifinnError``) naming what does not fit and by how much. ``self.result`` holds
    the record described in the module docstring.
    """

    def __init__(self, budget, clk_ns=10.0, target_fps=None, utilization=0.8, fpgapart=None, board_name="board",
                 mvau_wwidth_max=36, max_reweights=30, memory_GBps=None, memory=""):
        super().__init__()
        self.memory_GBps, self.memory = memory_GBps, memory
        self.budget = {k: float(budget.get(k, 0) or 0) for k in RESOURCES}
        self.clk_ns = float(clk_ns)
        self.target_fps = None if target_fps is None else float(target_fps)
        self.utilization = float(utilization)
        self.fpgapart, self.board_name = fpgapart, board_name
        self.mvau_wwidth_max, self.max_reweights = int(mvau_wwidth_max), int(max_reweights)
        self.limit = {k: self.budget[k] * self.utilization for k in RESOURCES}
        self.result = None
        if self.clk_ns <= 0:
            raise ResourceFoldingError(f"clk_ns must be > 0, got {clk_ns}")
        if not 0 < self.utilization <= 1:
            raise ResourceFoldingError(f"utilization must be in (0, 1], got {utilization}")
        if self.target_fps is not None and not self.target_fps > 0:
            raise ResourceFoldingError(f"target_fps must be > 0 frames per second, got {target_fps}")

    # --- helpers ------------------------------------------------------------------------------------------------
    def fps(self, cycles):
        return 1e9 / (self.clk_ns * cycles) if cycles else math.inf

    def _cost_fn(self, weights):
        def cost(option):
            total = 0.0
            for k in RESOURCES:
                v = option.res[k]
                if v <= 0:
                    continue
                if self.limit[k] <= 0:
                    return math.inf
                total += weights[k] * v / self.limit[k]
            return total
        return cost

    @staticmethod
    def _total(layers, picks):
        total = dict.fromkeys(RESOURCES, 0.0)
        for layer in layers:
            for k in RESOURCES:
                total[k] += picks[layer.name].res[k]
        return total

    def _overflow(self, total):
        return {k: (total[k], self.limit[k]) for k in RESOURCES if total[k] > self.limit[k] + 1e-9}

    def _describe(self, over):
        parts = []
        for k, (need, have) in over.items():
            ratio = f"{need / have:.2f}x" if have > 0 else "the board has none"
            parts.append(f"{k} {_fmt_res(need)} needed vs {_fmt_res(have)} available "
                         f"({self.utilization:.0%} of {self.budget[k]:.0f}; {ratio})")
        return "; ".join(parts)

    # --- search -------------------------------------------------------------------------------------------------
    def _picks_for(self, layers, max_cycles):
        """Cheapest option of every layer with cycles <= max_cycles, reweighting overflowing resources.

        Returns ``(picks, over)``: ``over`` is empty when the picks fit, else the overflow {resource: (needed,
        available)} of the least-overflowing attempt (``picks`` is then None). ``max_cycles`` must be reachable by
        every layer."""
        feasible = [[o for o in layer.options if o.cycles <= max_cycles] for layer in layers]
        # lower bound per resource: no choice can fit when the smallest possible sum of one resource does not
        bound = {k: sum(min(o.res[k] for o in opts) for opts in feasible) for k in RESOURCES}
        weights = dict.fromkeys(RESOURCES, 1.0)
        best = None
        for _ in range(self.max_reweights + 1):
            cost = self._cost_fn(weights)
            picks = {layer.name: min(opts, key=lambda o: (cost(o), o.cycles)) for layer, opts in zip(layers, feasible)}
            over = self._overflow(self._total(layers, picks))
            if not over:
                return picks, {}
            worst = max((need / have if have > 0 else math.inf) for need, have in over.values())
            if best is None or worst < best[0]:
                best = (worst, over)
            if self._overflow(bound):
                break
            for k, (need, have) in over.items():
                weights[k] *= 2.0 * (need / have if have > 0 else 1e6)
        return None, best[1]

    def _fastest_fit(self, layers, mem_cycles=0):
        """Smallest bottleneck cycle count (at least the memory's ``mem_cycles``) whose per-layer cheapest picks fit
        (module docstring)."""
        slowest = max(o.cycles for layer in layers for o in layer.options)
        picks, over = self._picks_for(layers, slowest)
        if over:
            raise FoldingBudgetError(
                f"even the cheapest folding of every layer (fully folded) does not fit {self.board_name}: "
                f"{self._describe(over)}. Pick a larger board, narrower weight/activation formats or smaller "
                "layers, or raise the utilization limit",
                {k: v[0] for k, v in over.items()}, {k: v[1] for k, v in over.items()})
        floor = max([min(o.cycles for o in layer.options) for layer in layers] + [mem_cycles])
        for cycles in sorted({o.cycles for layer in layers for o in layer.options if o.cycles >= floor} | {floor}):
            found, _ = self._picks_for(layers, cycles)
            if found is not None:
                return found
        return picks

    def _unreachable(self, layers, target_cycles, mem=None):
        if mem and mem["cycles_per_frame"] > target_cycles:
            raise FoldingTargetUnreachableError(
                f"target_fps {self.target_fps:g} needs <= {target_cycles:.1f} cycles per frame at {self.clk_ns:g} ns, "
                f"but the {mem['describe']} take {mem['cycles_per_frame']:,} cycles per frame "
                f"({mem['bits_per_cycle']:g} bits per cycle), at most {mem['fps']:.1f} FPS. Lower target_fps, keep "
                "more weights on chip (weights_off_chip) or pick a board with more memory bandwidth",
                fastest_cycles=mem["cycles_per_frame"])
        fastest = [(layer, min(o.cycles for o in layer.options)) for layer in layers]
        missed = [(layer, c) for layer, c in fastest if c > target_cycles]
        if missed:
            best = max(c for _, c in fastest)
            names = ", ".join(f"{layer.name} ({c} cycles{'' if layer.foldable else ', not folded by this pass'})"
                              for layer, c in missed)
            raise FoldingTargetUnreachableError(
                f"target_fps {self.target_fps:g} needs <= {target_cycles:.1f} cycles per frame at "
                f"{self.clk_ns:g} ns, but even fully unfolded {names} take longer; the fastest possible folding "
                f"reaches {self.fps(best):.1f} FPS (before resources). Lower target_fps or shorten clk_ns",
                fastest_cycles=best)

    def _meet_target(self, layers, target_cycles, mem=None):
        """Cheapest per-layer picks meeting target_cycles; raises when unreachable or when nothing fits."""
        self._unreachable(layers, target_cycles, mem)
        picks, over = self._picks_for(layers, target_cycles)
        if picks is not None:
            return picks
        try:
            fit = self._fastest_fit(layers, mem["cycles_per_frame"] if mem else 0)
            cycles = max([p.cycles for p in fit.values()] + [mem["cycles_per_frame"] if mem else 0])
            hint = f"the fastest folding that fits reaches {self.fps(cycles):.1f} FPS"
        except FoldingBudgetError as err:
            hint = f"and {err}"
        raise FoldingBudgetError(
            f"target_fps {self.target_fps:g} does not fit {self.board_name}: the cheapest folding found that meets "
            f"it needs {self._describe(over)}; {hint}. Lower target_fps, pick a larger board or narrower formats",
            {k: v[0] for k, v in over.items()}, {k: v[1] for k, v in over.items()})

    # --- transformation -----------------------------------------------------------------------------------------
    def apply(self, model):
        ensure_finn_offline()
        nodes = [n for n in model.graph.node if _is_hw_node(n)]
        if not nodes:
            raise ResourceFoldingError(
                "SetFoldingResourceAware: the model has no hardware nodes (domain finn.custom_op.fpgadataflow*); "
                "convert to hardware ops (and create the dataflow partition) first")
        names = [n.name for n in nodes]
        if len(set(names)) != len(names) or not all(names):
            raise ResourceFoldingError("hardware nodes need unique names; run qonnx GiveUniqueNodeNames first")
        layers = [_Layer(n, self.fpgapart, self.mvau_wwidth_max) for n in nodes]
        mem = memory_bound(model, self.memory_GBps, self.clk_ns, self.memory)
        mem_cycles = mem["cycles_per_frame"] if mem else 0
        if self.target_fps is None:
            target_cycles = None
            picks = self._fastest_fit(layers, mem_cycles)
        else:
            target_cycles = 1e9 / (self.clk_ns * self.target_fps)
            picks = self._meet_target(layers, target_cycles, mem)
        for layer in layers:
            layer.set(picks[layer.name].attrs)
        model = model.transform(AnnotateCycles())
        total = self._total(layers, picks)
        slow = max(layers, key=lambda layer: picks[layer.name].cycles)
        max_cycles = picks[slow.name].cycles
        self.result = {
            "mode": "fastest_fit" if self.target_fps is None else "target_fps",
            "target_fps": self.target_fps,
            "target_cycles": target_cycles,
            "clk_ns": self.clk_ns,
            "estimated_fps": self.fps(max(max_cycles, mem_cycles)),
            "max_cycles": max_cycles,
            "max_cycles_node_name": slow.name,
            "memory": mem,
            "frame_cycles": max(max_cycles, mem_cycles),
            "bottleneck": mem["describe"] if mem_cycles >= max_cycles else slow.name,
            "board": self.board_name,
            "budget": self.budget,
            "utilization_limit": self.utilization,
            "limit": self.limit,
            "total": total,
            "fits": not self._overflow(total),
            "folding": {layer.name: dict(picks[layer.name].attrs) for layer in layers if layer.foldable},
            "layers": {layer.name: {"op_type": layer.node.op_type, "folded": layer.foldable,
                                    "attrs": dict(picks[layer.name].attrs), "cycles": picks[layer.name].cycles,
                                    "resources": picks[layer.name].res,
                                    "options": len(layer.options) if layer.foldable else 0}
                       for layer in layers},
            "not_folded": [layer.name for layer in layers if not layer.foldable],
        }
        model.set_metadata_prop(FOLDING_METADATA_KEY, json.dumps(self.result))
        return model, False


def folding_record(model):
    """The record ``SetFoldingResourceAware`` stored in the model, or None."""
    text = model.get_metadata_prop(FOLDING_METADATA_KEY)
    return json.loads(text) if text else None


def folding_step(model, cfg):
    """Build step ``model, cfg -> model`` (name it ``"passes.resource_folding.folding_step"`` in a config's
    ``steps``): ``SetFoldingResourceAware`` for ``cfg.board``'s budget, ``cfg.synth_clk_period_ns`` and
    ``cfg.target_fps`` (None: the fastest folding that fits), part ``cfg.fpga_part`` or the board's, and the board's
    external memory for nodes with external weights."""
    board = get_board(cfg.board)
    return model.transform(SetFoldingResourceAware(board.resources, cfg.synth_clk_period_ns, cfg.target_fps,
                                                   fpgapart=cfg.fpga_part or board.part, board_name=board.name,
                                                   memory_GBps=board.memory_GBps, memory=board.memory))
