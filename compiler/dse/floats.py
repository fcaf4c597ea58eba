"""The float models of the design-space exploration: one per (model, data set, recipe, configuration, seed), trained
once, saved in the output folder and kept in memory, so that every point of a model and seed quantizes the same
weights.

A point's task names its model, data set and training ``seed`` (default 0); ``MODEL_CONFIGS`` gives the network's
size and ``TRAIN_RECIPES`` its training (compiler/zoo/configs.py; the task's ``epochs`` overrides the recipe's).
The seed sets the initial weights (``FLOAT_INIT_SEED + seed``) and the batch order, so the seeds of a point are
independently trained float models: their spread is the training noise the study's comparisons must exceed.
``float_key`` names the float model; a cached point made from another float model is run again
(``compiler.dse.points.study_key``).
"""

import hashlib
import json
from pathlib import Path

import torch

from compiler.data import load_data
from compiler.training import load_checkpoint, save_checkpoint, train
from compiler.zoo import build_model, load_float_state_dict
from compiler.zoo.configs import MODEL_CONFIGS, train_recipe

#: torch seed of a float model's initial weights for training seed 0 (training then seeds its own batches)
FLOAT_INIT_SEED = 0

_DATA = {}
_FLOAT = {}


def _config(task):
    """``build_model`` keyword arguments of a task's model on its data set."""
    return MODEL_CONFIGS[task["data"]][task["model"]]


def _recipe(task):
    """The task's training recipe (``TRAIN_RECIPES``) with the task's ``epochs`` when it gives them."""
    recipe = train_recipe(task["data"], task["model"])
    if task.get("epochs"):
        recipe["epochs"] = task["epochs"]
    return recipe


def float_key(task):
    """Name of a task's float model: model, data, epochs, seed and a hash of the model configuration and recipe."""
    recipe = _recipe(task)
    config = hashlib.sha1(json.dumps([_config(task), recipe], sort_keys=True).encode()).hexdigest()[:8]
    return f"{task['model']}_{task['data']}_{recipe['epochs']}ep_s{task.get('seed', 0)}_{config}"


def _data(name):
    """A data set's (x_train, y_train, x_test, y_test), loaded once per process; Fashion-MNIST with all 60,000
    training images (a recipe's ``train_images`` takes the first ones; calibration takes its own few)."""
    if name not in _DATA:
        _DATA[name] = load_data(name, train_images=None)
    return _DATA[name]


def _float_model(task, data):
    """The float model of a task: trained once per ``float_key`` and cached on disk in out_dir (and in memory per
    checkpoint path)."""
    ckpt = Path(task["out_dir"]) / f"float_{float_key(task)}.pt"
    key = str(ckpt.resolve())
    if key in _FLOAT and ckpt.is_file():
        return _FLOAT[key]
    seed = int(task.get("seed", 0))
    # seeded: torch seeds a new process at random, so unseeded initial weights would make every training (and each
    # of two workers training at once) a different float model under the same key
    torch.manual_seed(FLOAT_INIT_SEED + seed)
    model = build_model(task["model"], "float", **_config(task))
    if ckpt.is_file():
        state, _, _ = load_checkpoint(ckpt)
        load_float_state_dict(model, state)
    else:
        recipe = _recipe(task)
        epochs, n = recipe.pop("epochs"), recipe.pop("train_images")
        xtr, ytr, _, _ = data
        if n:
            xtr, ytr = xtr[:n], ytr[:n]
        hist = train(model, xtr, ytr, epochs=epochs, seed=seed, progress=False, **recipe)
        save_checkpoint(ckpt, model, {"model": task["model"], "seed": seed, "epochs": epochs},
                        {"train_seconds": hist.get("seconds")})
    torch.set_num_threads(1)
    _FLOAT[key] = model.eval()
    return _FLOAT[key]
