import json

import pytest
import torch
import torch.nn as nn

from compiler.data import load_digits
from compiler.errors import MinifinnError
from compiler.training import evaluate, load_checkpoint, predict_logits, save_checkpoint, train


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


@pytest.fixture(scope="module")
def trained():
    x, y = load_digits("train")
    xt, yt = load_digits("test")
    m = _mlp()
    h = train(m, x, y, epochs=10, lr=1e-2, batch_size=64, seed=0, threads=1, progress=False, x_val=xt, y_val=yt)
    return m, h, xt, yt


def test_tiny_mlp_on_digits(trained):
    m, h, xt, yt = trained
    acc = evaluate(m, xt, yt)
    assert acc >= 0.85
    assert h["val_acc"][-1] == pytest.approx(acc)
    assert h["loss"][-1] < h["loss"][0]
    assert len(h["loss"]) == 10 and h["seconds"] > 0 and h["threads"] == 1
    assert h["lr"][-1] < 1e-4  # one-cycle annealed to ~0


def test_training_is_deterministic():
    x, y = load_digits("test")
    outs = []
    for _ in range(2):
        m = _mlp()
        train(m, x, y, epochs=1, lr=1e-2, batch_size=64, seed=5, progress=False)
        outs.append(predict_logits(m, x[:8]))
    assert torch.equal(outs[0], outs[1])


def test_checkpoint_roundtrip(trained, tmp_path):
    m, _, xt, yt = trained
    cfg = {"model": "mlp", "hidden": 64}
    met = {"accuracy": evaluate(m, xt, yt)}
    p = save_checkpoint(tmp_path / "sub" / "ckpt.pt", m, cfg, met)
    sd, cfg2, met2 = load_checkpoint(p)
    assert cfg2 == cfg and met2 == met
    m2 = _mlp()
    with torch.no_grad():
        for prm in m2.parameters():
            prm.zero_()
    m2.load_state_dict(sd)
    assert torch.equal(predict_logits(m2, xt), predict_logits(m, xt))
    with pytest.raises(MinifinnError, match="JSON"):
        save_checkpoint(tmp_path / "bad.pt", m, {"x": object()}, {})
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(MinifinnError, match="not a minifinn checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(MinifinnError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_bad_arguments():
    x, y = load_digits("test")
    with pytest.raises(MinifinnError, match="epochs"):
        train(_mlp(), x, y, epochs=0, progress=False)
    with pytest.raises(MinifinnError, match="schedule"):
        train(_mlp(), x, y, epochs=1, schedule="step", progress=False)


def _write_fake_fmnist(d, n_train=96, n_test=32):
    import gzip
    import struct

    import numpy as np

    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        # class-dependent images so that something is learnable
        x = (rng.integers(0, 60, size=(n, 28, 28)) + (y[:, None, None] * 20)).astype(np.uint8)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            raw = struct.pack(">HBB", 0, 8, arr.ndim) + b"".join(struct.pack(">I", s) for s in arr.shape)
            (d / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(raw + arr.tobytes()))


def test_train_vit_flow_smoke(tmp_path):
    """build_flows/train_vit.py end to end on a tiny fake data set: checkpoint, metrics.json, ptq.json."""
    pytest.importorskip("compiler.zoo")
    from build_flows import train_vit
    from compiler.zoo import build_model

    assert train_vit.edge_format("fp:e2m1") == "fp:e4m3" and train_vit.edge_format("int:4") == "int:8"
    spec = train_vit.make_spec("int:4")
    assert (spec.weights, spec.acts, spec.first, spec.last) == ("int:4", "int:4", "int:8", "int:8")
    _write_fake_fmnist(tmp_path)
    out = tmp_path / "out"
    rc = train_vit.main(["--epochs", "1", "--dim", "16", "--depth", "1", "--heads", "2", "--patch", "7",
                         "--threads", "1", "--data-dir", str(tmp_path), "--output-dir", str(out), "--no-progress",
                         "--ptq", "--ptq-formats", "fp:e2m1", "int:4", "--calib-size", "48"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["threads"] == 1 and 0 <= metrics["test_acc"] <= 1 and metrics["train_seconds"] > 0
    assert metrics["config"]["model"]["dim"] == 16
    sd, cfg, met = load_checkpoint(out / "vit_float.pt")
    model = build_model("vit", "float", **cfg["model"])
    model.load_state_dict(sd)
    assert met["test_acc"] == metrics["test_acc"]
    ptq = json.loads((out / "ptq.json").read_text())
    assert [r["format"] for r in ptq["rows"]] == ["fp:e2m1", "int:4"]
    assert [r["first_last"] for r in ptq["rows"]] == ["fp:e4m3", "int:8"]
    assert all(0 <= r["test_acc"] <= 1 and r["techniques"] == "calibrate" for r in ptq["rows"])
    assert ptq["calib_size"] == 48
