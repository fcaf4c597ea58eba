"""Float (or quantization-aware) training on CPU, evaluation and checkpoints.

``train`` uses AdamW with a one-cycle schedule (linear warm-up over the first 10 % of steps, cosine decay),
cross-entropy with optional label smoothing, deterministic shuffling from ``seed`` and an explicit torch thread
count (on a shared 2-core machine the default thread count oversubscribes the cores).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from compiler.data import make_loader
from compiler.errors import MinifinnError


def _as_tensor(x, dtype):
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=dtype)


def train(
    model: nn.Module,
    x,
    y,
    epochs: int = 10,
    lr: float = 3e-3,
    batch_size: int = 128,
    weight_decay: float = 0.05,
    label_smoothing: float = 0.0,
    seed: int = 0,
    threads: int = 1,
    progress: bool = True,
    schedule: str = "onecycle",
    x_val=None,
    y_val=None,
) -> dict:
    """Train ``model`` in place on (x, y); returns a history dict.

    ``schedule`` is "onecycle" (warm-up + cosine) or "cosine" (cosine decay from ``lr``). If ``x_val``/``y_val``
    are given the validation accuracy is recorded after every epoch. History keys: ``loss`` (mean train loss per
    epoch), ``train_acc`` (per epoch), ``val_acc`` (per epoch, when validation data is given), ``lr`` (per epoch,
    at its end), ``seconds`` (wall time of training), ``threads``, ``epochs``, ``steps``.
    ``threads`` is applied with ``torch.set_num_threads`` and stays in effect after training.
    """
    if epochs < 1:
        raise MinifinnError(f"train: epochs={epochs}; need at least 1")
    if schedule not in ("onecycle", "cosine"):
        raise MinifinnError(f"train: unknown schedule {schedule!r}; supported: 'onecycle', 'cosine'")
    torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    loader = make_loader(x, y, batch_size=batch_size, shuffle=True, seed=seed)
    steps = epochs * len(loader)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    if schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=steps, pct_start=0.1, anneal_strategy="cos"
        )
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    history = {"loss": [], "train_acc": [], "lr": [], "threads": int(threads), "epochs": epochs, "steps": steps}
    if x_val is not None:
        history["val_acc"] = []
    bar = None
    if progress:
        bar = tqdm(total=steps, desc="train", unit="step", dynamic_ncols=True)
    t0 = time.perf_counter()
    try:
        for epoch in range(epochs):
            model.train()
            total_loss, correct, seen = 0.0, 0, 0
            for xb, yb in loader:
                opt.zero_grad(set_to_none=True)
                out = model(xb)
                loss = loss_fn(out, yb)
                if not torch.isfinite(loss):
                    raise MinifinnError(
                        f"train: loss became {loss.item()} at epoch {epoch + 1}; lower lr (now {lr})"
                    )
                loss.backward()
                opt.step()
                sched.step()
                total_loss += loss.item() * len(yb)
                correct += (out.argmax(1) == yb).sum().item()
                seen += len(yb)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
            history["loss"].append(total_loss / seen)
            history["train_acc"].append(correct / seen)
            history["lr"].append(opt.param_groups[0]["lr"])
            if x_val is not None:
                history["val_acc"].append(evaluate(model, x_val, y_val))
                if bar is not None:
                    bar.set_postfix(epoch=epoch + 1, val_acc=f"{history['val_acc'][-1]:.4f}")
    finally:
        if bar is not None:
            bar.close()
    history["seconds"] = time.perf_counter() - t0
    model.eval()
    return history


@torch.no_grad()
def predict_logits(model: nn.Module, x, batch_size: int = 512) -> torch.Tensor:
    """Model outputs (eval mode) for all of ``x``, concatenated, as a float32 tensor."""
    was_training = model.training
    model.eval()
    xt = _as_tensor(x, torch.float32)
    outs = []
    for i in range(0, len(xt), batch_size):
        out = model(xt[i : i + batch_size])
        if hasattr(out, "value"):  # a Brevitas QuantTensor
            out = out.value
        outs.append(out.float())
    model.train(was_training)
    return torch.cat(outs)


def evaluate(model: nn.Module, x, y, batch_size: int = 512) -> float:
    """Top-1 accuracy (0..1) of ``model`` on (x, y)."""
    logits = predict_logits(model, x, batch_size)
    yt = _as_tensor(y, torch.int64)
    return float((logits.argmax(1) == yt).float().mean().item())


def _jsonable(obj):
    try:
        json.dumps(obj)
    except TypeError as e:
        raise MinifinnError(f"save_checkpoint: config/metrics must be JSON-serialisable: {e}") from e
    return obj


def save_checkpoint(path, model: nn.Module, config: dict, metrics: dict) -> Path:
    """Save ``model``'s state_dict with a JSON-serialisable ``config`` and ``metrics`` to ``path`` (torch.save)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": "minifinn-checkpoint-1",
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": _jsonable(dict(config)),
        "metrics": _jsonable(dict(metrics)),
    }
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")  # concurrent writers (DSE workers) do not collide
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path):
    """Load a checkpoint written by :func:`save_checkpoint`: returns (state_dict, config, metrics)."""
    path = Path(path)
    if not path.is_file():
        raise MinifinnError(f"checkpoint {path} does not exist")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != "minifinn-checkpoint-1":
        raise MinifinnError(f"{path} is not a minifinn checkpoint (written by compiler.training.save_checkpoint)")
    return payload["state_dict"], payload["config"], payload["metrics"]
