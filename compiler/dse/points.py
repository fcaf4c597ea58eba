"""Points of the design-space exploration: their cache keys, their evaluation and the process pool that runs them.

One point = (model, weight format, activation format, training seed): PTQ on ``CALIB_IMAGES`` training images from the float model (``best_ptq`` over Brevitas
technique sets, or calibration only), QONNX export, lowering (``passes.lower_qonnx``) and

* accuracy of the **lowered** graph on the test images: the hardware's arithmetic for every matrix product,
  requantizer, add and pooling (bit-exact with the hardware ops' cppsim and rtlsim). A ViT's softmax / LayerNorm /
  GELU are float islands there; the hardware replaces them with its own fixed-point ops, so such a point is also
  run through the **hardware graph** (``compiler.hw_accuracy``, batched) on its first ``hw_images`` images:
  ``accuracy_hw``, and ``hw_lowered_agreement``, the share of those images where both predict the same class;
* cost from the compiler (``compiler.dse.cost``), twice: with DSPs (``LUT``, ``FF``, ``BRAM_18K``, ``DSP``,
  ``breakdown``) and LUT-only, the paper's basis (the same keys with ``_lutonly``; ``LUT_mac_lutonly`` the MAC LUTs),
  each split into MAC / requantizer / memory / other by the ops' ``resource_breakdown``.

Points are cached as JSON files (``points/<key>.json``) so an interrupted sweep resumes; a cached point made with
other estimate models (``compiler.cost_model``), another float model or another ``STUDY_VERSION`` is run again.
``run_points`` runs them in local processes.
"""

import hashlib
import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from compiler.cost_model import cost_model_fingerprint
from compiler.dse.cost import hardware_costs, hardware_graph
from compiler.dse.floats import _config, _data, _float_model, float_key
from compiler.dse.formats import format_bits
from compiler.errors import ConfigError, MinifinnError
from compiler.export import export_qonnx_model
from compiler.finn_env import ensure_finn_offline
from compiler.hw_accuracy import hardware_logits
from compiler.ptq import DEFAULT_TECHNIQUE_SETS, best_ptq, quantize_ptq
from compiler.zoo import QuantSpec, build_model
from passes import lower_qonnx
from passes.compare import compare_lowered

#: version of what a point measures; cached points of another version are run again (2: cost of the whole hardware
#: graph, the hardware graph's accuracy check for models with float islands; 3: training seeds, LUT-only and DSP
#: costs with the ops' MAC / requantizer / memory breakdown, 512 calibration images)
STUDY_VERSION = 3

#: training images PTQ calibrates on (and ``best_ptq`` scores its technique sets on a held-out part of)
CALIB_IMAGES = 512

#: float compute a lowered graph must not keep: a matrix product, convolution or normalization left in float was not
#: lowered to exact arithmetic, so neither the point's "hardware-exact" accuracy nor its cost would be the hardware's
UNLOWERED_COMPUTE = ("Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization")

#: images on which a point with float islands (the ViT's softmax / LayerNorm / GELU in the lowered graph) is also
#: run through the hardware graph, whose ops replace the islands with their own fixed-point arithmetic
HW_CHECK_IMAGES = 300


def point_key(model, w, a, ptq, overrides=None, image_offset=0, images=None, seed=0, first_last=None):
    """Cache name of a point; a point measured on other test images than the first ``images`` gets their range, a
    training seed other than 0 its number, a first and last layer in their own format (``first_last``) that format.
    Overrides too long for a file name (many layers of a mixed-precision configuration) become a hash."""
    key = f"{model}__w-{w.replace(':', '')}__a-{a.replace(':', '')}__{ptq}"
    if overrides:
        listed = "_".join(f"{k.replace('.', '-')}-{v.replace(':', '')}" for k, v in sorted(overrides.items()))
        if len(listed) > 150:
            listed = f"{len(overrides)}layers-" + hashlib.sha1(listed.encode()).hexdigest()[:16]
        key += "__" + listed
    if first_last:
        key += f"__fl-{first_last.replace(':', '')}"
    if image_offset:
        key += f"__img{image_offset}-{image_offset + images}"
    if seed:
        key += f"__s{seed}"
    return key


def study_key(task):
    """What a cached point must have been made with to be reused: the study version and the float model."""
    return f"v{STUDY_VERSION}-{float_key(task)}"


def _cache_path(task):
    key = point_key(task["model"], task["w"], task["a"], task["ptq"], task.get("overrides") or {},
                    task.get("image_offset", 0), task["images"], task.get("seed", 0), task.get("first_last"))
    return Path(task["out_dir"]) / "points" / f"{key}.json"


def dse_technique_sets():
    """Best-PTQ technique sets of the study: ``compiler.ptq.DEFAULT_TECHNIQUE_SETS`` without activation equalization,
    whose rescaled models keep float Conv/Gemm/MatMul/BatchNormalization after lowering (measured in the full
    study: the CNN with 3 of its 6 layers unmapped, the ViT with float Gemm/MatMul)."""
    return {k: v for k, v in DEFAULT_TECHNIQUE_SETS.items() if "act_equalization" not in v}


def check_fully_lowered(lowered, what):
    """Raise ``MinifinnError`` naming the nodes when ``lowered`` keeps float compute (``UNLOWERED_COMPUTE``)."""
    left = [f"{n.name or '?'} ({n.op_type})" for n in lowered.graph.node if n.op_type in UNLOWERED_COMPUTE]
    if left:
        raise MinifinnError(f"{what}: {len(left)} compute node(s) stayed float after lowering, so the point would be "
                            f"neither hardware-exact nor fully costed: {', '.join(left[:8])}"
                            f"{' ...' if len(left) > 8 else ''}")


def evaluate_point(task):
    """Run one point (a dict: model, w, a, ptq, data, images, target_cycles, out_dir, epochs; optional overrides
    {weight site: format}, image_offset: the first test image, hw_images: images of the hardware-graph check,
    0 = off, seed: the float model's training seed, default 0, first_last: the format of the first and last layer,
    default the point's); returns its row."""
    torch.set_num_threads(1)
    ensure_finn_offline()
    overrides = task.get("overrides") or {}
    cache = _cache_path(task)
    fingerprint = cost_model_fingerprint()
    if cache.is_file():
        row = json.loads(cache.read_text())
        if row.get("cost_model") == fingerprint and row.get("study") == study_key(task):
            return row
        # computed with other resource estimate models (after a recalibration), another float model or another
        # version of the study: stale, run it again
    try:
        row = _evaluate(task, cache)
    except Exception as err:  # recorded, not fatal: a format minifinn cannot map (MinifinnError) or, so that a bug
        # does not stop a sweep of hours, any other error with its type; listed as failed
        error = str(err) if isinstance(err, MinifinnError) else f"internal error {type(err).__name__}: {err}"
        row = {"model": task["model"], "weights": task["w"], "acts": task["a"], "overrides": dict(overrides),
               "seed": task.get("seed", 0), "error": error}
    row["cost_model"] = fingerprint
    row["study"] = study_key(task)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(row, indent=1))
    return row


def _evaluate(task, cache):
    overrides = task.get("overrides") or {}
    out = Path(task["out_dir"])
    t0 = time.perf_counter()
    data = _data(task["data"])
    float_model = _float_model(task, data)
    xtr, ytr, xte, yte = data
    offset = task.get("image_offset", 0)
    if offset >= len(xte):
        raise ConfigError(f"image_offset {offset} is past the {len(xte)} test images of {task['data']!r}")
    # first_last: the first and the last layer (weights and the quantizer feeding each) in their own format, as the
    # paper keeps them at 8 bits
    spec = QuantSpec(weights=task["w"], acts=task["a"], first=task.get("first_last"), last=task.get("first_last"),
                     overrides=dict(overrides))
    quant = build_model(task["model"], spec, **_config(task))
    calib_x, calib_y = xtr[:CALIB_IMAGES], ytr[:CALIB_IMAGES]
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
    costs = hardware_costs(specialized, task["target_cycles"])
    cost = dict(costs["dsp"])
    lut = costs["lut"]
    cost.update({f"{k}_lutonly": lut[k] for k in ("LUT", "FF", "BRAM_18K", "DSP", "LUT_mvau", "max_cycles")})
    cost["breakdown_lutonly"] = lut["breakdown"]
    cost["LUT_mac"] = cost["breakdown"]["mac"]["LUT"]
    cost["LUT_mac_lutonly"] = lut["breakdown"]["mac"]["LUT"]
    cmp = compare_lowered(qonnx, lowered, xs, batch_size=100, labels=ys, keep_logits=True)
    float_islands = sorted({nd.op_type for nd in lowered.graph.node
                            if nd.op_type in ("Softmax", "LayerNormalization", "Gelu")})
    row = {
        "model": task["model"], "weights": task["w"], "acts": task["a"],
        "w_bits": format_bits(task["w"]), "a_bits": format_bits(task["a"]),
        "w_kind": task["w"].split(":")[0], "a_kind": task["a"].split(":")[0],
        "overrides": dict(overrides), "first_last": task.get("first_last"), "seed": task.get("seed", 0),
        "ptq": technique, "accuracy": cmp["accuracy_lowered"],
        "accuracy_qonnx": cmp["accuracy_qonnx"], "images": n, "image_offset": offset, **cost,
        "float_islands": float_islands,
    }
    hw_images = task.get("hw_images", HW_CHECK_IMAGES)
    if float_islands and hw_images:
        row.update(_hardware_check(hw, out / "models" / f"{cache.stem}_hw.onnx", xs, ys, cmp["logits_lowered"],
                                   hw_images))
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def _hardware_check(hw, path, x, y, logits_lowered, images):
    """Accuracy of the hardware graph (``compiler.hw_accuracy``: every op's bit-exact Python model, batched, saved
    to ``path``) on the first ``images`` of the point's images, and how often its prediction agrees with the lowered
    graph's there."""
    n = min(images, len(x))
    path.parent.mkdir(parents=True, exist_ok=True)
    hw.save(str(path))
    pred = hardware_logits(path, x[:n], workers=1, progress=False).argmax(1)
    low = np.asarray(logits_lowered)[:n].argmax(1)
    return {"hw_images": n, "accuracy_hw": float(np.mean(pred == np.asarray(y[:n]))),
            "accuracy_lowered_on_hw_images": float(np.mean(low == np.asarray(y[:n]))),
            "hw_lowered_agreement": float(np.mean(pred == low))}


def run_points(tasks, jobs=1, progress=True):
    """Evaluate tasks (cached ones instantly) in ``jobs`` local processes; rows in task order."""
    if jobs <= 1:
        return [evaluate_point(t) for t in tqdm(tasks, desc="dse", disable=not progress)]
    # the float models first, one per worker at a time: otherwise every worker would train the same model at once
    todo = list({float_key(t): t for t in tasks if not _cache_path(t).is_file()}.values())
    with mp.get_context("spawn").Pool(jobs) as pool:
        list(pool.imap_unordered(_train_float, todo))
        return list(tqdm(pool.imap(evaluate_point, tasks), total=len(tasks), desc="dse", disable=not progress))


def _train_float(task):
    """Train (or load) a task's float model in a worker; saved to the output folder for the points."""
    torch.set_num_threads(1)
    _float_model(task, _data(task["data"]))
