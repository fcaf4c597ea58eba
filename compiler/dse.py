"""Design-space exploration: hardware-exact accuracy against hardware cost over weight x activation formats.

One point = (model, weight format, activation format): PTQ from the float model (``best_ptq`` over Brevitas
technique sets, or calibration only), QONNX export, lowering (``passes.lower_qonnx``) and

* accuracy of the **lowered** graph on the test images (the hardware's arithmetic: bit-exact with every
  ``MinifloatMVAU`` / ``MinifloatThresholding`` in cppsim and rtlsim; a ViT's softmax / LayerNorm / GELU still run
  in float, which the point records);
* cost from the compiler: every matrix product as ``MinifloatMVAU``, standalone requantizers as
  ``MinifloatThresholding``, each folded to the same throughput target (``target_cycles`` per frame), summed
  LUT / FF / BRAM_18K / DSP estimates (LUT from the Yosys-calibrated model) and weight memory bits. Layers without
  a hardware op yet (convolution input generators, pooling, residual adds, transformer nonlinearities) are not
  costed; they are the same for every format pair.

Points are cached as JSON files (``points/<key>.json``) so an interrupted sweep resumes; ``run_points`` runs them in
local processes. ``pareto_flags`` marks points no other point beats in both accuracy and cost.
"""

import json
import time
from pathlib import Path


INT_FORMATS = [f"int:{b}" for b in range(3, 9)]
MINIFLOAT_FORMATS = [f"fp:e{e}m{b - 1 - e}" for b in range(3, 9) for e in range(1, b - 1)]
ALL_FORMATS = INT_FORMATS + MINIFLOAT_FORMATS
QUICK_FORMATS = ["int:4", "fp:e2m1", "int:8", "fp:e4m3"]


def format_bits(spec):
    from compiler.numerics import parse_format

    return parse_format(spec).bits


def point_key(model, w, a, ptq, overrides=None):
    key = f"{model}__w-{w.replace(':', '')}__a-{a.replace(':', '')}__{ptq}"
    if overrides:
        key += "__" + "_".join(f"{k.replace('.', '-')}-{v.replace(':', '')}" for k, v in sorted(overrides.items()))
    return key


def hardware_cost(lowered, target_cycles):
    """Folded MVAU / thresholding estimates of a lowered graph: {LUT, FF, BRAM_18K, DSP, weight_bits, layers}."""
    from qonnx.custom_op.registry import getCustomOp

    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from passes.folding import fold_mvau_to_target
    from passes.infer_hw import InferMinifloatMVAU, InferMinifloatThresholding

    hw = lowered.transform(InferMinifloatMVAU()).transform(InferMinifloatThresholding())
    hw = hw.transform(SpecializeLayers("xc7z020clg400-1"))
    total = {"LUT": 0, "FF": 0, "BRAM_18K": 0, "DSP": 0, "weight_bits": 0, "layers": 0, "max_cycles": 0}
    for node in hw.graph.node:
        if not node.domain.startswith("finn.custom_op.fpgadataflow"):
            continue
        inst = getCustomOp(node)
        if node.op_type.startswith("MinifloatMVAU"):
            fold_mvau_to_target(inst, target_cycles)
            if not inst.get_nodeattr("dynamic_input"):
                total["weight_bits"] += inst.get_nodeattr("MW") * inst.get_nodeattr("MH") * inst.weight_format().bits
        else:
            channels = inst.get_nodeattr("NumChannels")
            for pe in [d for d in range(1, channels + 1) if channels % d == 0]:
                inst.set_nodeattr("PE", pe)
                if inst.get_exp_cycles() <= target_cycles:
                    break
        est = inst.node_res_estimation("xc7z020clg400-1")
        for key in ("LUT", "FF", "BRAM_18K", "DSP"):
            total[key] += est[key]
        total["layers"] += 1
        total["max_cycles"] = max(total["max_cycles"], inst.get_exp_cycles())
    return total


def evaluate_point(task):
    """Run one point (a dict: model, w, a, ptq, data, images, target_cycles, out_dir, epochs); returns its row."""
    import torch

    from compiler.errors import MinifinnError
    from compiler.finn_env import ensure_finn_offline

    torch.set_num_threads(1)
    ensure_finn_offline()
    out = Path(task["out_dir"])
    overrides = task.get("overrides") or {}
    cache = out / "points" / f"{point_key(task['model'], task['w'], task['a'], task['ptq'], overrides)}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    try:
        row = _evaluate(task, cache)
    except MinifinnError as err:  # e.g. a format whose accumulators minifinn cannot hold: recorded, not fatal
        row = {"model": task["model"], "weights": task["w"], "acts": task["a"], "overrides": dict(overrides),
               "error": str(err)}
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
    spec = QuantSpec(weights=task["w"], acts=task["a"], overrides=dict(overrides))
    quant = build_model(task["model"], spec, **_config(task))
    calib_x, calib_y = xtr[:1024], ytr[:1024]
    if task["ptq"] == "best":
        quant, technique, _ = best_ptq(float_model, quant, calib_x, calib_y)
    else:
        quantize_ptq(float_model, quant, calib_x, techniques=("calibrate",))
        technique = "calibrate"
    qonnx = export_qonnx_model(quant, torch.from_numpy(xte[:1]), out / "models" / f"{cache.stem}.onnx")
    lowered = lower_qonnx(qonnx)
    n = min(task["images"], len(xte))
    cmp = compare_lowered(qonnx, lowered, xte[:n], batch_size=100, labels=yte[:n])
    cost = hardware_cost(lowered, task["target_cycles"])
    float_islands = sorted({nd.op_type for nd in lowered.graph.node
                            if nd.op_type in ("Softmax", "LayerNormalization", "Gelu")})
    row = {
        "model": task["model"], "weights": task["w"], "acts": task["a"],
        "w_bits": format_bits(task["w"]), "a_bits": format_bits(task["a"]),
        "w_kind": task["w"].split(":")[0], "a_kind": task["a"].split(":")[0],
        "overrides": dict(overrides), "ptq": technique, "accuracy": cmp["accuracy_lowered"], "accuracy_qonnx": cmp["accuracy_qonnx"],
        "images": n, **cost, "float_islands": float_islands, "seconds": round(time.perf_counter() - t0, 1),
    }
    return row


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
    """The float model of a task: trained once per (model, data, epochs) and cached on disk in out_dir."""
    import torch

    from compiler.training import load_checkpoint, save_checkpoint, train
    from compiler.zoo import build_model, load_float_state_dict

    key = (task["model"], task["data"], task["epochs"])
    if key in _FLOAT:
        return _FLOAT[key]
    model = build_model(task["model"], "float", **_config(task))
    ckpt = Path(task["out_dir"]) / f"float_{task['model']}_{task['data']}_{task['epochs']}ep.pt"
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


def mixed_precision_search(base_task, candidates, budget_lut, progress=True):
    """Greedy per-layer weight-format search under a LUT budget (activations fixed at ``base_task['a']``).

    Start with every layer at the cheapest candidate; repeatedly try moving one layer to the next candidate (in
    the given cost order) and keep the move with the largest accuracy gain per extra LUT that stays within
    ``budget_lut``; stop when no move fits or none improves accuracy. Returns (best row, list of evaluated rows).
    """
    sites = weight_sites(base_task)
    choice = {s: 0 for s in sites}

    def evaluate(ch):
        task = dict(base_task, w=candidates[0], overrides={s: candidates[i] for s, i in ch.items() if i})
        row = evaluate_point(task)
        return row if not row.get("error") else dict(row, accuracy=-1.0, LUT=float("inf"))

    current = evaluate(choice)
    history = [current]
    if current["LUT"] > budget_lut:
        return current, history
    while True:
        best = None
        for s in sites:
            if choice[s] + 1 >= len(candidates):
                continue
            trial = dict(choice, **{s: choice[s] + 1})
            row = evaluate(trial)
            history.append(row)
            if row["LUT"] > budget_lut:
                continue
            gain = (row["accuracy"] - current["accuracy"]) / max(row["LUT"] - current["LUT"], 1)
            if row["accuracy"] > current["accuracy"] and (best is None or gain > best[0]):
                best = (gain, trial, row)
        if best is None:
            return current, history
        _, choice, current = best
        if progress:
            print(f"  mixed: {current['overrides']} -> {100 * current['accuracy']:.2f} % at {current['LUT']:.0f} LUT",
                  flush=True)
