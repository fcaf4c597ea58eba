"""The float models of the design-space exploration: one per (model, data set, epochs, configuration), trained
once, saved in the output folder and kept in memory, so that every point of a model quantizes the same weights.

A point's task names its model and data set (``MODEL_CONFIGS`` gives the network's size); ``float_key`` names the
float model, and a cached point made from another float model is run again (``compiler.dse.points.study_key``).
"""

import hashlib
import json
from pathlib import Path

import torch

from compiler.data import load_data
from compiler.training import load_checkpoint, save_checkpoint, train
from compiler.zoo import build_model, load_float_state_dict
from compiler.zoo.configs import MODEL_CONFIGS

#: torch seed of a float model's initial weights (training then seeds its own batches and dropout)
FLOAT_INIT_SEED = 0

_DATA = {}
_FLOAT = {}


def _config(task):
    """``build_model`` keyword arguments of a task's model on its data set."""
    return MODEL_CONFIGS[task["data"]][task["model"]]


def float_key(task):
    """Name of a task's float model: model, data, epochs and a hash of the model configuration."""
    config = hashlib.sha1(json.dumps(_config(task), sort_keys=True).encode()).hexdigest()[:8]
    return f"{task['model']}_{task['data']}_{task['epochs']}ep_{config}"


def _data(name):
    """A data set's (x_train, y_train, x_test, y_test), loaded once per process."""
    if name not in _DATA:
        _DATA[name] = load_data(name)
    return _DATA[name]


def _float_model(task, data):
    """The float model of a task: trained once per (model, data, epochs, configuration) and cached on disk in
    out_dir (and in memory per checkpoint path)."""
    ckpt = Path(task["out_dir"]) / f"float_{float_key(task)}.pt"
    key = str(ckpt.resolve())
    if key in _FLOAT and ckpt.is_file():
        return _FLOAT[key]
    # seeded: torch seeds a new process at random, so unseeded initial weights would make every training (and each
    # of two workers training at once) a different float model under the same key
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
