"""Design-space exploration: hardware-exact accuracy against hardware cost over weight x activation formats.

One point = (model, weight format, activation format): PTQ from the float model (``best_ptq`` over Brevitas
technique sets, or calibration only), QONNX export, lowering (``passes.lower_qonnx``) and

* accuracy of the **lowered** graph on the test images: the hardware's arithmetic for every matrix product,
  requantizer, add and pooling (bit-exact with the hardware ops' cppsim and rtlsim). A ViT's softmax / LayerNorm /
  GELU are float islands there; the hardware replaces them with its own fixed-point ops, so such a point is also
  run through the **hardware graph** (``compiler.hw_accuracy``, batch 1, slower) on its first ``hw_images`` images:
  ``accuracy_hw``, and ``hw_lowered_agreement``, the share of those images where both predict the same class;
* cost from the compiler: the build's hardware graph (``step_convert_to_hw``: every layer a hardware op), each node
  folded to the same throughput target (``target_cycles`` per frame, or the slowest layer's fastest pace), summed
  LUT / FF / BRAM_18K / DSP estimates (LUT from the Yosys-calibrated models), the MVAUs' share ``LUT_mvau``, LUTs
  by op type and weight memory bits.

Points are cached as JSON files (``points/<key>.json``) so an interrupted sweep resumes; a cached point made with
other estimate models (``compiler.cost_model``) is run again. ``run_points`` runs them in local processes.
``pareto_flags`` marks points no other point beats in both accuracy and cost.
``mixed_precision_search`` looks for per-layer weight formats (minifloat or integer) that beat a uniform format under
a LUT budget: single-layer sensitivity probes from the start format, then a greedy combination by accuracy per LUT.
"""

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from compiler.cost_model import cost_model_fingerprint
from compiler.errors import ConfigError


INT_FORMATS = [f"int:{b}" for b in range(3, 9)]
MINIFLOAT_FORMATS = [f"fp:e{e}m{b - 1 - e}" for b in range(3, 9) for e in range(1, b - 1)]
ALL_FORMATS = INT_FORMATS + MINIFLOAT_FORMATS
QUICK_FORMATS = ["int:4", "fp:e2m1", "int:8", "fp:e4m3"]


def format_bits(spec):
    from compiler.numerics import parse_format

    return parse_format(spec).bits


def point_key(model, w, a, ptq, overrides=None, image_offset=0, images=None):
    """Cache name of a point; a point measured on other test images than the first ``images`` gets their range.
    Overrides too long for a file name (many layers of a mixed-precision configuration) become a hash."""
    key = f"{model}__w-{w.replace(':', '')}__a-{a.replace(':', '')}__{ptq}"
    if overrides:
        listed = "_".join(f"{k.replace('.', '-')}-{v.replace(':', '')}" for k, v in sorted(overrides.items()))
        if len(listed) > 150:
            listed = f"{len(overrides)}layers-" + hashlib.sha1(listed.encode()).hexdigest()[:16]
        key += "__" + listed
    if image_offset:
        key += f"__img{image_offset}-{image_offset + images}"
    return key


#: version of what a point measures; cached points of another version are run again (2: cost of the whole hardware
#: graph, the hardware graph's accuracy check for models with float islands)
STUDY_VERSION = 2


def float_key(task):
    """Name of a task's float model: model, data, epochs and a hash of the model configuration."""
    config = hashlib.sha1(json.dumps(_config(task), sort_keys=True).encode()).hexdigest()[:8]
    return f"{task['model']}_{task['data']}_{task['epochs']}ep_{config}"


def study_key(task):
    """What a cached point must have been made with to be reused: the study version and the float model."""
    return f"v{STUDY_VERSION}-{float_key(task)}"


def _cache_path(task):
    key = point_key(task["model"], task["w"], task["a"], task["ptq"], task.get("overrides") or {},
                    task.get("image_offset", 0), task["images"])
    return Path(task["out_dir"]) / "points" / f"{key}.json"


#: torch seed of a float model's initial weights (training then seeds its own batches and dropout)
FLOAT_INIT_SEED = 0

#: float compute a lowered graph must not keep: a matrix product, convolution or normalization left in float was not
#: lowered to exact arithmetic, so neither the point's "hardware-exact" accuracy nor its cost would be the hardware's
UNLOWERED_COMPUTE = ("Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization")


def dse_technique_sets():
    """Best-PTQ technique sets of the study: ``compiler.ptq.DEFAULT_TECHNIQUE_SETS`` without activation equalization,
    whose rescaled models keep float Conv/Gemm/MatMul/BatchNormalization after lowering (measured in the full
    study: the CNN with 3 of its 6 layers unmapped, the ViT with float Gemm/MatMul)."""
    from compiler.ptq import DEFAULT_TECHNIQUE_SETS

    return {k: v for k, v in DEFAULT_TECHNIQUE_SETS.items() if "act_equalization" not in v}


def check_fully_lowered(lowered, what):
    """Raise ``MinifinnError`` naming the nodes when ``lowered`` keeps float compute (``UNLOWERED_COMPUTE``)."""
    from compiler.errors import MinifinnError

    left = [f"{n.name or '?'} ({n.op_type})" for n in lowered.graph.node if n.op_type in UNLOWERED_COMPUTE]
    if left:
        raise MinifinnError(f"{what}: {len(left)} compute node(s) stayed float after lowering, so the point would be "
                            f"neither hardware-exact nor fully costed: {', '.join(left[:8])}"
                            f"{' ...' if len(left) > 8 else ''}")


#: part the cost estimates are made for (the estimates' LUT/FF models do not depend on it; the DSP/BRAM mapping does)
COST_PART = "xc7z020clg400-1"
#: the folding's cost weights are a U250's resources scaled up so that no design runs out: each layer takes its
#: cheapest folding that meets the target, resources weighed by their share of a large board
COST_BUDGET_SCALE = 1000


def hardware_graph(lowered):
    """The build's hardware graph of a lowered model (``compiler.steps.step_convert_to_hw``: every compute node a
    hardware op, input quantization / output dequantization on the host), specialized to RTL/HLS variants;
    ``UnmappableNodesError`` names the nodes otherwise."""
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from qonnx.transformation.general import GiveUniqueNodeNames

    from compiler.steps import step_convert_to_hw

    hw = step_convert_to_hw(lowered.transform(GiveUniqueNodeNames()), None)
    return hw, hw.transform(SpecializeLayers(COST_PART))


def hardware_cost(specialized, target_cycles):
    """Estimates of the whole hardware graph (``hardware_graph``'s specialized model) folded to ``target_cycles``
    cycles per frame.

    Every hardware node (MVAUs, thresholding, LayerNorm, softmax, LUTs, adds, sliding windows, pooling, reorders)
    takes its cheapest folding that meets the target (passes/resource_folding.py ``SetFoldingResourceAware`` in
    target mode, weights from a large board); when a layer cannot reach the target even fully unfolded, the target
    becomes that layer's fastest cycles (the pipeline's pace). Thresholded nodes whose channels share one row are
    priced as such (``AnnotateSharedThresholds``, part of ``step_convert_to_hw``). Returns {LUT, FF, BRAM_18K,
    DSP: totals, LUT_mvau: the matrix-vector units' LUTs (the MAC arrays with their requantizers), weight_bits,
    layers, max_cycles, by_op: {op type: LUT}}."""
    from qonnx.custom_op.registry import getCustomOp

    from compiler.boards import get_board
    from passes.resource_folding import FoldingTargetUnreachableError, SetFoldingResourceAware

    budget = {k: v * COST_BUDGET_SCALE for k, v in get_board("U250").resources.items()}

    def fold_to(cycles):
        fold = SetFoldingResourceAware(budget, clk_ns=10.0, target_fps=1e8 / cycles, utilization=1.0,
                                       fpgapart=COST_PART, board_name="cost model")
        specialized.transform(fold)
        return fold

    try:
        fold = fold_to(target_cycles)
    except FoldingTargetUnreachableError as err:
        # a layer cannot go that fast even fully unfolded (e.g. a 28x28 sliding window: one window element per
        # cycle): the pipeline runs at that layer's pace, so the others are folded to it
        fold = fold_to(err.fastest_cycles)
    total = {"LUT": 0, "FF": 0, "BRAM_18K": 0, "DSP": 0, "LUT_mvau": 0, "weight_bits": 0, "layers": 0,
             "max_cycles": fold.result["max_cycles"], "by_op": {}}
    for layer in fold.result["layers"].values():
        res = layer["resources"]
        for key in ("LUT", "FF", "BRAM_18K", "DSP"):
            total[key] += res[key]
        op = layer["op_type"].rsplit("_", 1)[0]
        total["by_op"][op] = total["by_op"].get(op, 0) + res["LUT"]
        total["layers"] += 1
    total["LUT_mvau"] = total["by_op"].get("MinifloatMVAU", 0)
    for node in specialized.graph.node:
        if node.op_type.startswith("MinifloatMVAU"):
            inst = getCustomOp(node)
            if not inst.get_nodeattr("dynamic_input"):
                total["weight_bits"] += inst.get_nodeattr("MW") * inst.get_nodeattr("MH") * inst.weight_format().bits
    total = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in total.items()}
    total["by_op"] = {k: round(v) for k, v in sorted(total["by_op"].items())}
    return total


def evaluate_point(task):
    """Run one point (a dict: model, w, a, ptq, data, images, target_cycles, out_dir, epochs; optional overrides
    {weight site: format}, image_offset: the first test image, hw_images: images of the hardware-graph check,
    0 = off); returns its row."""
    import torch

    from compiler.errors import MinifinnError
    from compiler.finn_env import ensure_finn_offline

    torch.set_num_threads(1)
    ensure_finn_offline()
    overrides = task.get("overrides") or {}
    cache = _cache_path(task)
    fingerprint = cost_model_fingerprint()
    if cache.is_file():
        row = json.loads(cache.read_text())
        if row.get("cost_model") == fingerprint and row.get("study") == study_key(task):
            return row
        # computed with other resource estimate models (a recalibration since), another float model or another
        # version of the study: stale, run it again
    try:
        row = _evaluate(task, cache)
    except Exception as err:  # recorded, not fatal: a format minifinn cannot map (MinifinnError) or, so that a bug
        # does not stop a sweep of hours, any other error with its type; listed as failed
        error = str(err) if isinstance(err, MinifinnError) else f"internal error {type(err).__name__}: {err}"
        row = {"model": task["model"], "weights": task["w"], "acts": task["a"], "overrides": dict(overrides),
               "error": error}
    row["cost_model"] = fingerprint
    row["study"] = study_key(task)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(row, indent=1))
    return row


def _evaluate(task, cache):
    import torch

    from compiler.export import export_qonnx_model
    from compiler.ptq import best_ptq, quantize_ptq
    from compiler.zoo import QuantSpec, build_model
    from passes import lower_qonnx
    from passes.compare import compare_lowered

    overrides = task.get("overrides") or {}
    out = Path(task["out_dir"])
    t0 = time.perf_counter()
    data = _data(task["data"])
    float_model = _float_model(task, data)
    xtr, ytr, xte, yte = data
    offset = task.get("image_offset", 0)
    if offset >= len(xte):
        raise ConfigError(f"image_offset {offset} is past the {len(xte)} test images of {task['data']!r}")
    spec = QuantSpec(weights=task["w"], acts=task["a"], overrides=dict(overrides))
    quant = build_model(task["model"], spec, **_config(task))
    calib_x, calib_y = xtr[:1024], ytr[:1024]
    if task["ptq"] == "best":
        quant, technique, _ = best_ptq(float_model, quant, calib_x, calib_y, technique_sets=dse_technique_sets())
    else:
        quantize_ptq(float_model, quant, calib_x, techniques=("calibrate",))
        technique = "calibrate"
    qonnx = export_qonnx_model(quant, torch.from_numpy(xte[:1]), out / "models" / f"{cache.stem}.onnx")
    lowered = lower_qonnx(qonnx)
    check_fully_lowered(lowered, f"{task['model']} W {task['w']} A {task['a']} ({technique})")
    n = min(task["images"], len(xte) - offset)
    xs, ys = xte[offset:offset + n], yte[offset:offset + n]
    hw, specialized = hardware_graph(lowered)  # first: a graph that cannot be mapped stops before the long part
    cost = hardware_cost(specialized, task["target_cycles"])
    cmp = compare_lowered(qonnx, lowered, xs, batch_size=100, labels=ys, keep_logits=True)
    float_islands = sorted({nd.op_type for nd in lowered.graph.node
                            if nd.op_type in ("Softmax", "LayerNormalization", "Gelu")})
    row = {
        "model": task["model"], "weights": task["w"], "acts": task["a"],
        "w_bits": format_bits(task["w"]), "a_bits": format_bits(task["a"]),
        "w_kind": task["w"].split(":")[0], "a_kind": task["a"].split(":")[0],
        "overrides": dict(overrides), "ptq": technique, "accuracy": cmp["accuracy_lowered"],
        "accuracy_qonnx": cmp["accuracy_qonnx"], "images": n, "image_offset": offset, **cost,
        "float_islands": float_islands,
    }
    hw_images = task.get("hw_images", HW_CHECK_IMAGES)
    if float_islands and hw_images:
        row.update(_hardware_check(hw, out / "models" / f"{cache.stem}_hw.onnx", xs, ys, cmp["logits_lowered"],
                                   hw_images))
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


#: images on which a point with float islands (the ViT's softmax / LayerNorm / GELU in the lowered graph) is also
#: run through the hardware graph, whose ops replace the islands with their own fixed-point arithmetic
HW_CHECK_IMAGES = 300


def _hardware_check(hw, path, x, y, logits_lowered, images):
    """Accuracy of the hardware graph (``compiler.hw_accuracy``: every op's bit-exact Python model, batch 1, saved
    to ``path``) on the first ``images`` of the point's images, and how often its prediction agrees with the lowered
    graph's there."""
    from compiler.hw_accuracy import hardware_logits

    n = min(images, len(x))
    path.parent.mkdir(parents=True, exist_ok=True)
    hw.save(str(path))
    pred = hardware_logits(path, x[:n], workers=1, progress=False).argmax(1)
    low = np.asarray(logits_lowered)[:n].argmax(1)
    return {"hw_images": n, "accuracy_hw": float(np.mean(pred == np.asarray(y[:n]))),
            "accuracy_lowered_on_hw_images": float(np.mean(low == np.asarray(y[:n]))),
            "hw_lowered_agreement": float(np.mean(pred == low))}


_DATA = {}
_FLOAT = {}


def _data(name):
    if name not in _DATA:
        from build_flows.check_lowering import load_data

        _DATA[name] = load_data(name)
    return _DATA[name]


def _config(task):
    from build_flows.check_lowering import MODEL_CONFIGS

    return MODEL_CONFIGS[task["data"]][task["model"]]


def _float_model(task, data):
    """The float model of a task: trained once per (model, data, epochs, configuration) and cached on disk in
    out_dir (and in memory per checkpoint path)."""
    import torch

    from compiler.training import load_checkpoint, save_checkpoint, train
    from compiler.zoo import build_model, load_float_state_dict

    ckpt = Path(task["out_dir"]) / f"float_{float_key(task)}.pt"
    key = str(ckpt.resolve())
    if key in _FLOAT and ckpt.is_file():
        return _FLOAT[key]
    # seeded: torch seeds a new process at random, so unseeded initial weights made every training (and each of two
    # workers training at once, before the parent trained first) a different float model under the same key
    torch.manual_seed(FLOAT_INIT_SEED)
    model = build_model(task["model"], "float", **_config(task))
    if ckpt.is_file():
        state, _, _ = load_checkpoint(ckpt)
        load_float_state_dict(model, state)
    else:
        xtr, ytr, _, _ = data
        train(model, xtr, ytr, epochs=task["epochs"], progress=False)
        save_checkpoint(ckpt, model, {"model": task["model"]}, {})
    torch.set_num_threads(1)
    _FLOAT[key] = model.eval()
    return _FLOAT[key]


def run_points(tasks, jobs=1, progress=True):
    """Evaluate tasks (cached ones instantly) in ``jobs`` local processes; rows in task order."""
    from tqdm import tqdm

    if jobs <= 1:
        return [evaluate_point(t) for t in tqdm(tasks, desc="dse", disable=not progress)]
    import multiprocessing as mp

    # the float models first, here: otherwise every worker would train the same model at once
    for task in {float_key(t): t for t in tasks if not _cache_path(t).is_file()}.values():
        _float_model(task, _data(task["data"]))

    with mp.get_context("spawn").Pool(jobs) as pool:
        return list(tqdm(pool.imap(evaluate_point, tasks), total=len(tasks), desc="dse", disable=not progress))


def pareto_flags(rows, cost_key):
    """True for rows that no other row of the same model beats (>= accuracy and <= cost, one strictly)."""
    flags = []
    for r in rows:
        dominated = any(o is not r and o["model"] == r["model"] and o["accuracy"] >= r["accuracy"]
                        and o[cost_key] <= r[cost_key] and (o["accuracy"] > r["accuracy"] or o[cost_key] < r[cost_key])
                        for o in rows)
        flags.append(not dominated)
    return flags


def side_by_side(rows):
    """{model: [{bits, best_int, best_minifloat}]} for W = A points of equal width."""
    table = {}
    for model in sorted({r["model"] for r in rows}):
        entries = []
        for bits in sorted({r["w_bits"] for r in rows if r["model"] == model}):
            same = [r for r in rows if r["model"] == model and r["w_bits"] == bits and r["a_bits"] == bits
                    and r["weights"] == r["acts"]]
            ints = [r for r in same if r["w_kind"] == "int"]
            fps = [r for r in same if r["w_kind"] == "fp"]
            if not ints and not fps:
                continue
            best = (lambda rs: max(rs, key=lambda r: r["accuracy"]) if rs else None)
            entries.append({"bits": bits, "int": best(ints), "minifloat": best(fps)})
        table[model] = entries
    return table


def weight_sites(task):
    """Names of the weight quantizer sites (one per layer) of a task's model."""
    from compiler.zoo import build_model

    model = build_model(task["model"], "float", **_config(task))
    return [name for name, site in model.quant_sites.items() if site["kind"] == "weight"]


def layer_alternatives(uniform_rows, start):
    """Formats a layer may move to from ``start`` in the mixed-precision search, cheapest uniform point first.

    From the uniform (W = A) rows of one model: the most accurate integer and the most accurate minifloat format at
    the nearest width below ``start``'s, at its width and at the nearest width above (rows with an error are
    skipped; ``start`` itself is not an alternative).
    """
    rows = [r for r in uniform_rows if not r.get("error")]
    if not any(r["weights"] == start for r in rows):
        raise ConfigError(f"mixed-precision start format {start!r} is not among the uniform points "
                          f"({sorted({r['weights'] for r in rows})})")
    bits = format_bits(start)
    widths = sorted({r["w_bits"] for r in rows})
    below = [w for w in widths if w < bits][-1:]
    above = [w for w in widths if w > bits][:1]
    chosen = []
    for width in below + [bits] + above:
        for kind in ("int", "fp"):
            same = [r for r in rows if r["w_bits"] == width and r["w_kind"] == kind]
            if same:
                best = max(same, key=lambda r: (r["accuracy"], -r["LUT"]))
                if best["weights"] != start:
                    chosen.append(best)
    return [r["weights"] for r in sorted(chosen, key=lambda r: r["LUT"])]


def _usable(row):
    """A row whose point failed counts as useless: accuracy -1 and infinite LUTs."""
    return row if not row.get("error") else dict(row, accuracy=-1.0, LUT=float("inf"))


class _Evaluator:
    """Evaluates weight-format configurations {site: format} of one base task, once each, and keeps the history."""

    def __init__(self, base_task, start, evaluate):
        self.base_task, self.start, self.evaluate = base_task, start, evaluate
        self.rows = {}
        self.history = []

    def key(self, config):
        return tuple(sorted((s, f) for s, f in config.items() if f != self.start))

    def task(self, config):
        return dict(self.base_task, w=self.start, overrides=dict(self.key(config)))

    def __call__(self, config):
        key = self.key(config)
        if key not in self.rows:
            self.rows[key] = _usable(self.evaluate(self.task(config)))
            self.history.append(self.rows[key])
        return self.rows[key]

    def prefetch(self, configs, jobs, progress=False):
        """Evaluate ``configs`` ahead in ``jobs`` local processes (``run_points``; their rows land in the point
        cache, so the calls in search order are instant). Only with the default ``evaluate_point``."""
        if jobs > 1 and self.evaluate is evaluate_point:
            run_points([self.task(c) for c in configs if self.key(c) not in self.rows], jobs=jobs, progress=progress)


def _probe_sensitivities(run, sites, start, alternatives, origin, progress):
    """Single-layer probes: every layer alone at every alternative format, the others at ``start``.

    Returns {site: {format: {"accuracy", "LUT", "accuracy_delta", "lut_delta"}}} with deltas against ``origin``
    (the start format itself is the entry with zero deltas).
    """
    table = {}
    for s in sites:
        table[s] = {start: {"accuracy": origin["accuracy"], "LUT": origin["LUT"], "accuracy_delta": 0.0,
                            "lut_delta": 0.0}}
        for f in alternatives:
            row = run({s: f})
            table[s][f] = {"accuracy": row["accuracy"], "LUT": row["LUT"],
                           "accuracy_delta": row["accuracy"] - origin["accuracy"],
                           "lut_delta": row["LUT"] - origin["LUT"]}
            if progress:
                print(f"  mixed: probe {s} -> {f}: {100 * table[s][f]['accuracy_delta']:+.2f} % accuracy, "
                      f"{table[s][f]['lut_delta']:+.0f} LUT", flush=True)
    return table


def _move(table, config, site, fmt):
    """(predicted accuracy gain, LUT change) of moving ``site`` from its current format to ``fmt``."""
    now, new = table[site][config[site]], table[site][fmt]
    return new["accuracy_delta"] - now["accuracy_delta"], new["lut_delta"] - now["lut_delta"]


def _fund(table, config, needed, exclude, buckets=400):
    """Savings moves (at most one per layer outside ``exclude``) that recover at least ``needed`` LUTs with the least
    predicted accuracy loss (a multiple-choice knapsack over the single-layer probes, LUTs counted in ``buckets``
    steps rounded down, so a plan found really recovers ``needed``). Returns ({site: format}, predicted loss) or None
    when all savings together cannot recover enough."""
    step = max(needed / buckets, 1.0)
    target = int(-(-needed // step))
    best = {0: (0.0, {})}  # recovered steps (capped at target) -> (least loss, moves)
    for s in table:
        if s in exclude:
            continue
        options = []
        for f in table[s]:
            gain, dlut = _move(table, config, s, f)
            if f != config[s] and dlut < 0:
                options.append((-gain, int(-dlut // step), f))
        merged = dict(best)
        for units, (loss, moves) in best.items():
            for move_loss, move_units, f in options:
                reached = min(units + move_units, target)
                if reached not in merged or loss + move_loss < merged[reached][0]:
                    merged[reached] = (loss + move_loss, dict(moves, **{s: f}))
        best = merged
    if target not in best:
        return None
    loss, moves = best[target]
    return moves, loss


def _plans(table, config, current, budget_lut):
    """Candidate combined moves from ``config``, best predicted accuracy per LUT first.

    A plan upgrades one layer to a format whose single-layer probe predicts a gain over its current format; when
    the predicted LUT total leaves the budget, savings moves on the least sensitive other layers pay for it. Over
    budget (a start above the budget), the only plan is the cheapest-loss recovery down to the budget.
    """
    if current["LUT"] > budget_lut:
        funded = _fund(table, config, current["LUT"] - budget_lut, exclude=())
        if funded is None:
            return []
        return [(funded[0], -funded[1], sum(_move(table, config, t, g)[1] for t, g in funded[0].items()))]
    plans = []
    for s in table:
        for f in table[s]:
            gain, dlut = _move(table, config, s, f)
            if f == config[s] or gain <= 0:
                continue
            moves, net_gain, net_lut = {s: f}, gain, dlut
            over = current["LUT"] + dlut - budget_lut
            if over > 0:
                funded = _fund(table, config, over, exclude={s})
                if funded is None:
                    continue
                moves.update(funded[0])
                net_gain -= funded[1]
                net_lut = sum(_move(table, config, t, g)[1] for t, g in moves.items())
            if net_gain > 0:
                plans.append((moves, net_gain, net_lut))
    # LUT-neutral or -saving gains first (largest gain), then gain per extra LUT
    return sorted(plans, key=lambda p: (p[2] > 0, -p[1] if p[2] <= 0 else -p[1] / p[2]))


def mixed_precision_search(base_task, start, alternatives, budget_lut, progress=True, max_trials=None,
                           evaluate=None, sites=None, jobs=1):
    """Sensitivity-guided (top-down) per-layer weight-format search under a LUT budget.

    Activations stay at ``base_task['a']``. The search starts with every weight layer at ``start`` (normally the
    best uniform format within the budget, so the result is never below it; a richer start above the budget is
    first brought down to the budget), then

    1. probes each layer alone at each of ``alternatives`` (minifloat or integer formats, e.g. from
       ``layer_alternatives``): its accuracy change and LUT change against the start (LUTs are exactly additive
       per layer, accuracy approximately);
    2. greedily combines moves: the plan with the best predicted accuracy gain per extra LUT (see ``_plans``) is
       evaluated; it is kept when it is within the budget and really more accurate than the current
       configuration (or as accurate with fewer LUTs), otherwise the next plan is tried; after a kept plan the
       plans are recomputed. The search stops when no plan is left or after ``max_trials`` combined evaluations
       (default 2 per layer).

    ``evaluate`` (default ``evaluate_point``) maps a task to a row with ``accuracy`` and ``LUT``; ``sites`` default
    to the model's weight quantizer sites; ``jobs`` local processes run the single-layer probes (independent of
    each other) ahead of the search. Returns (best row within the budget, or the cheapest row when none fits;
    evaluated rows in order; a report with the sensitivities, the tried plans and the runtime).
    """
    t0 = time.perf_counter()
    sites = list(sites or weight_sites(base_task))
    alternatives = [f for f in dict.fromkeys(alternatives) if f != start]
    if not sites or not alternatives:
        raise ConfigError(f"mixed-precision search needs weight layers and alternative formats; got sites {sites}, "
                          f"alternatives {alternatives} (start {start!r})")
    run = _Evaluator(base_task, start, evaluate or evaluate_point)
    config = {s: start for s in sites}
    origin = current = run(config)
    run.prefetch([dict(config, **{s: f}) for s in sites for f in alternatives], jobs, progress)
    table = _probe_sensitivities(lambda moves: run(dict(config, **moves)), sites, start, alternatives, origin,
                                 progress)
    trials, steps = 0, []
    max_trials = 2 * len(sites) if max_trials is None else max_trials
    while trials < max_trials:
        kept = False
        for moves, net_gain, net_lut in _plans(table, config, current, budget_lut):
            trial = dict(config, **moves)
            measured = run.key(trial) in run.rows  # e.g. a single-layer probe: its row decides without a new run
            if not measured and trials >= max_trials:
                break
            trials += 0 if measured else 1
            row = run(trial)
            over_before = current["LUT"] > budget_lut
            keep = (row["LUT"] < current["LUT"]) if over_before else (
                row["LUT"] <= budget_lut and (row["accuracy"], -row["LUT"]) > (current["accuracy"], -current["LUT"]))
            steps.append({"moves": moves, "predicted_accuracy_delta": net_gain, "predicted_lut_delta": net_lut,
                          "accuracy": row["accuracy"], "LUT": row["LUT"], "kept": keep})
            if progress:
                print(f"  mixed: try {moves}: predicted {100 * net_gain:+.2f} % / {net_lut:+.0f} LUT, measured "
                      f"{100 * row['accuracy']:.2f} % at {row['LUT']:.0f} LUT -> {'kept' if keep else 'rejected'}",
                      flush=True)
            if keep:
                config, current, kept = trial, row, True
                break
        if not kept:
            break
    fitting = [r for r in run.history if r["LUT"] <= budget_lut]
    best = (max(fitting, key=lambda r: (r["accuracy"], -r["LUT"])) if fitting
            else min(run.history, key=lambda r: r["LUT"]))
    report = {
        "algorithm": "top-down sensitivity: single-layer probes from the start format, then greedy combination by "
                     "predicted accuracy gain per LUT (savings on the least sensitive layers pay for upgrades), "
                     "each combination measured",
        "start": start, "acts": base_task["a"], "alternatives": alternatives, "sites": sites,
        "start_accuracy": origin["accuracy"], "start_LUT": origin["LUT"],
        "sensitivity": {s: _summary(table[s], start) for s in sites},
        "steps": steps, "probes": len(sites) * len(alternatives), "trials": trials,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return best, run.history, report


def _summary(probes, start):
    """One layer's probes plus its sensitivity: the largest accuracy drop and the largest gain of any probe."""
    alt = {f: p for f, p in probes.items() if f != start}
    deltas = [p["accuracy_delta"] for p in alt.values()]
    return {"probes": alt, "max_drop": max(0.0, -min(deltas)), "max_gain": max(0.0, max(deltas))}
