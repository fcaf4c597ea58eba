
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
