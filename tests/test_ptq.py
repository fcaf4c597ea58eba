import logging

import brevitas.nn as qnn
import pytest
import torch
import torch.nn as nn
from brevitas.quant import (
    Fp8e4m3ActPerTensorFloat,
    Fp8e4m3WeightPerTensorFloat,
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFloat,
)

from compiler.data import load_digits
from compiler.ptq import PTQError, best_ptq, copy_float_weights, quantize_ptq
from compiler.training import evaluate, predict_logits, train

QUANT = {
    "int8": (Int8WeightPerTensorFloat, Int8ActPerTensorFloat),
    "fp8_e4m3": (Fp8e4m3WeightPerTensorFloat, Fp8e4m3ActPerTensorFloat),
    # per-channel stats-based weight scales (like the zoo's): Brevitas' sliced GPTQ would be a no-op here
    "int8_per_channel": (Int8WeightPerChannelFloat, Int8ActPerTensorFloat),
}


class FloatMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fl = nn.Flatten()
        self.l1 = nn.Linear(64, 64)
        self.r = nn.ReLU()
        self.l2 = nn.Linear(64, 10)

    def forward(self, x):
        return self.l2(self.r(self.l1(self.fl(x))))


class QuantMLP(nn.Module):
    """Same names as FloatMLP: QuantIdentity input, QuantLinear, QuantReLU."""

    def __init__(self, weight_quant, act_quant):
        super().__init__()
        self.fl = nn.Flatten()
        self.inp = qnn.QuantIdentity(act_quant=act_quant)
        self.l1 = qnn.QuantLinear(64, 64, weight_quant=weight_quant)
        self.r = qnn.QuantReLU(act_quant=act_quant)
        self.l2 = qnn.QuantLinear(64, 10, weight_quant=weight_quant)

    def forward(self, x):
        return self.l2(self.r(self.l1(self.inp(self.fl(x)))))


@pytest.fixture(scope="module")
def setup():
    x, y = load_digits("train")
    xt, yt = load_digits("test")
    torch.manual_seed(0)
    f = FloatMLP()
    train(f, x, y, epochs=10, lr=1e-2, batch_size=64, seed=0, progress=False)
    return f, x, y, xt, yt, evaluate(f, xt, yt)


@pytest.mark.parametrize("qname", sorted(QUANT))
def test_ptq_close_to_float(setup, qname):
    f, x, _, xt, yt, facc = setup
    assert facc > 0.9
    q = quantize_ptq(f, QuantMLP(*QUANT[qname]), x[:512], techniques=("calibrate",))
    qacc = evaluate(q, xt, yt)
    assert qacc >= facc - 0.03, (qname, facc, qacc)
    # the model really is quantized: outputs differ from float but only slightly
    diff = (predict_logits(q, xt) - predict_logits(f, xt)).abs()
    assert 0 < diff.mean() < 0.5


def test_calibrate_changes_scales(setup):
    f, x, _, xt, _, _ = setup
    q0 = quantize_ptq(f, QuantMLP(*QUANT["int8"]), x[:512], techniques=())
    q1 = quantize_ptq(f, QuantMLP(*QUANT["int8"]), x[:512], techniques=("calibrate",))
    assert torch.equal(q0.l1.weight, q1.l1.weight)
    assert not torch.allclose(predict_logits(q0, xt), predict_logits(q1, xt))


@pytest.mark.parametrize("qname", sorted(QUANT))
@pytest.mark.parametrize("tech", ["bias_correction", "gptq", "act_equalization"])
def test_each_technique_changes_model(setup, qname, tech):
    f, x, _, xt, yt, facc = setup
    base = quantize_ptq(f, QuantMLP(*QUANT[qname]), x[:512], techniques=("calibrate",))
    rep = {}
    q = quantize_ptq(f, QuantMLP(*QUANT[qname]), x[:512], techniques=("calibrate", tech), report=rep)
    assert rep["applied"] == (["act_equalization", "calibrate"] if tech == "act_equalization" else ["calibrate", tech])
    assert rep["skipped"] == {}
    assert (predict_logits(q, xt) - predict_logits(base, xt)).abs().max() > 1e-3
    assert evaluate(q, xt, yt) >= facc - 0.05
    if tech == "gptq":  # GPTQ re-rounds weights: the quantized weights themselves move
        moved = (q.l1.quant_weight().value - base.l1.quant_weight().value).abs()
        scale = base.l1.quant_weight().scale
        assert (moved > 0.5 * scale).float().mean() > 0.01  # >1 % of weights moved by at least one step
    if tech == "bias_correction":
        assert not torch.equal(q.l2.bias, base.l2.bias)
    if tech == "act_equalization":
        assert type(q.l1).__name__ == "EqualizedModule"


def test_inapplicable_technique_is_skipped_with_reason(setup, caplog):
    f, x, _, xt, _, _ = setup

    class ActOnly(nn.Module):  # quantized input, float layers: nothing for GPTQ / bias correction
        def __init__(self):
            super().__init__()
            self.fl, self.inp, self.l1, self.r, self.l2 = (
                nn.Flatten(), qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat), nn.Linear(64, 64), nn.ReLU(),
                nn.Linear(64, 10),
            )

        def forward(self, x):
            return self.l2(self.r(self.l1(self.inp(self.fl(x)))))

    rep = {}
    with caplog.at_level(logging.WARNING, logger="compiler.ptq"):
        q = quantize_ptq(f, ActOnly(), x[:256], techniques=("calibrate", "gptq", "bias_correction"), report=rep)
    assert rep["applied"] == ["calibrate"]
    assert set(rep["skipped"]) == {"gptq", "bias_correction"} and "no Linear/Conv" in rep["skipped"]["gptq"]
    assert "skipping gptq" in caplog.text
    assert torch.equal(q.l1.weight, f.l1.weight)


def test_weight_copy_errors(setup):
    f, x, *_ = setup
    with pytest.raises(PTQError, match="unknown PTQ technique"):
        quantize_ptq(f, QuantMLP(*QUANT["int8"]), x[:10], techniques=("smoothquant",))

    class Wider(QuantMLP):
        def __init__(self):
            super().__init__(*QUANT["int8"])
            self.l2 = qnn.QuantLinear(64, 12, weight_quant=Int8WeightPerTensorFloat)

    with pytest.raises(PTQError, match="shape mismatch.*l2.weight"):
        copy_float_weights(f, Wider())

    class Renamed(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = qnn.QuantLinear(64, 10, weight_quant=Int8WeightPerTensorFloat)

    with pytest.raises(PTQError, match="no counterpart"):
        copy_float_weights(f, Renamed())
    with pytest.raises(PTQError, match="empty"):
        quantize_ptq(f, QuantMLP(*QUANT["int8"]), x[:0])


def test_best_ptq_picks_max_holdout(setup):
    f, x, y, xt, yt, facc = setup
    q_template = QuantMLP(*QUANT["fp8_e4m3"])
    before = {k: v.clone() for k, v in q_template.state_dict().items()}
    sets = {"calibrate": ("calibrate",), "calibrate+gptq": ("calibrate", "gptq")}
    model, name, table = best_ptq(f, q_template, x[:600], y[:600], technique_sets=sets)
    assert [r["name"] for r in table] == list(sets)
    best = max(r["holdout_acc"] for r in table)
    assert name == next(r["name"] for r in table if r["holdout_acc"] == best)
    assert all(0 < r["holdout_acc"] <= 1 for r in table)
    assert evaluate(model, xt, yt) >= facc - 0.03
    # the template is left untouched (deep copies are quantized)
    after = q_template.state_dict()
    assert set(after) == set(before) and all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(q_template.l1.weight, model.l1.weight)
