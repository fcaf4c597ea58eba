"""Post-training quantization of Brevitas models from a trained float model.

``quantize_ptq`` copies the float weights into a quantized model of the same module structure and applies, in
this order (the order of Brevitas' own PTQ examples), the requested techniques:

* ``"act_equalization"`` -- SmoothQuant-style activation equalization (``brevitas.graph.equalize.
  activation_equalization_mode``, layerwise variant: works on any nn.Module, no torch.fx tracing). Statistics are
  collected with quantization disabled. It wraps every equalized layer into ``EqualizedModule`` (a per-channel
  scale ``Mul`` in front of the layer), so the model gains one Mul per layer.
* ``"calibrate"`` -- activation scale calibration (``brevitas.graph.calibrate.calibration_mode``): quantization is
  disabled, statistics are averaged over all calibration batches, then scales are fixed. Always needed for
  statistics-based activation quantizers; every technique set below includes it.
* ``"gptq"`` -- GPTQ weight rounding (``brevitas.graph.gptq.gptq_mode``, layer by layer, quantized activations).
* ``"bias_correction"`` -- per-channel output-mean correction (``brevitas.graph.calibrate.bias_correction_mode``);
  layers without a bias receive one.

A technique that does not apply to a model (e.g. no quantized weight layers for GPTQ) is skipped with a logged
warning and the reason is recorded in the optional ``report`` dict; it is never silently ignored.
``best_ptq`` runs several technique sets on copies of the quantized model and keeps the best one by accuracy on a
held-out part of the calibration data.

``quantize_model`` (``compiler/quantize_model.py``, re-exported here) is the other entry point: it quantizes any
float torch model by graph rewriting with the paper's recipe, no quantized twin needed.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
from brevitas.graph.calibrate import bias_correction_mode, calibration_mode, quantization_status_manager
from brevitas.graph.equalize import LayerwiseActivationEqualization, activation_equalization_mode
from brevitas.graph.gptq import GPTQ, gptq_mode
from brevitas.graph.utils import is_conv_transposed
from brevitas.nn.quant_layer import QuantWeightBiasInputOutputLayer as QuantWBIOL
from brevitas.quant_tensor import _unpack_quant_tensor

from compiler.errors import MinifinnError
from compiler.quantize_model import QuantizeModelError, quantize_model
from compiler.training import evaluate

__all__ = ["DEFAULT_TECHNIQUE_SETS", "TECHNIQUES", "FullTensorGPTQ", "PTQError", "QuantizeModelError", "best_ptq",
           "copy_float_weights", "quantize_model", "quantize_ptq"]

log = logging.getLogger(__name__)

TECHNIQUES = ("act_equalization", "calibrate", "gptq", "bias_correction")
DEFAULT_TECHNIQUE_SETS = {
    "calibrate": ("calibrate",),
    "calibrate+bias_correction": ("calibrate", "bias_correction"),
    "calibrate+gptq": ("calibrate", "gptq"),
    "calibrate+gptq+bias_correction": ("calibrate", "gptq", "bias_correction"),
    "act_equalization+calibrate": ("act_equalization", "calibrate"),
    "act_equalization+calibrate+gptq": ("act_equalization", "calibrate", "gptq"),
}


class PTQError(MinifinnError):
    """Invalid PTQ input (mismatched models, unknown technique, empty calibration data)."""


def _batches(x, batch_size):
    xt = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
    for i in range(0, len(xt), batch_size):
        yield xt[i : i + batch_size]


def copy_float_weights(float_model: nn.Module, quant_model: nn.Module) -> None:
    """Load ``float_model``'s parameters/buffers into ``quant_model`` (same module names).

    Quantizer state of ``quant_model`` absent from the float model (scales, statistics) is left alone; a float
    tensor with no counterpart, a shape mismatch or a quantized layer weight/bias left unset raises ``PTQError``.
    """
    fsd = float_model.state_dict()
    qsd = quant_model.state_dict()
    unexpected = [k for k in fsd if k not in qsd]
    if unexpected:
        raise PTQError(
            f"float model tensors {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''} have no counterpart in the "
            "quantized model; build both with the same structure (e.g. zoo build_model with spec 'float')"
        )
    bad = [(k, tuple(fsd[k].shape), tuple(qsd[k].shape)) for k in fsd if fsd[k].shape != qsd[k].shape]
    if bad:
        raise PTQError(f"shape mismatch float vs quantized model (name, float, quant): {bad[:5]}")
    layer_params = [
        f"{name}.{p}" if name else p
        for name, m in quant_model.named_modules()
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd, nn.LayerNorm, nn.modules.batchnorm._BatchNorm))
        for p, t in m.named_parameters(recurse=False)
        if p in ("weight", "bias") and t is not None
    ]
    unset = [k for k in layer_params if k not in fsd]
    if unset:
        raise PTQError(f"quantized model layer parameters {unset[:5]} are missing from the float model's state_dict")
    with torch.no_grad():
        quant_model.load_state_dict(fsd, strict=False)


def _quant_weight_layers(model):
    return [n for n, m in model.named_modules() if isinstance(m, QuantWBIOL) and m.weight_quant.is_quant_enabled]


def _has_stats_act_quant(model):
    return any(hasattr(m, "collect_stats_steps") for m in model.modules())


def _applicability(model, technique):
    """None if ``technique`` applies to ``model``, otherwise the reason why not."""
    if technique == "calibrate":
        if not _has_stats_act_quant(model):
            return "no statistics-based activation quantizer in the model (nothing to calibrate)"
        return None
    if technique == "gptq":
        if not _quant_weight_layers(model):
            return "no Linear/Conv layer with an enabled weight quantizer (GPTQ only rounds quantized weights)"
        return None
    if technique == "bias_correction":
        if not _quant_weight_layers(model):
            return "no quantized Linear/Conv layer to correct"
        return None
    if technique == "act_equalization":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            regions = LayerwiseActivationEqualization(copy.deepcopy(model)).regions
        if not regions:
            return "no Linear/Conv layer found for layerwise activation equalization"
        return None
    raise PTQError(f"unknown PTQ technique {technique!r}; supported: {', '.join(TECHNIQUES)}")


@torch.no_grad()
def _run_calibrate(model, calib_x, batch_size):
    with calibration_mode(model):
        for xb in _batches(calib_x, batch_size):
            model(xb)


@torch.no_grad()
def _run_act_equalization(model, calib_x, batch_size, alpha):
    with activation_equalization_mode(model, alpha=alpha, layerwise=True, add_mul_node=True):
        with quantization_status_manager(
            model, disable_act_quant=True, disable_weight_quant=True, disable_bias_quant=True, is_training=False
        ):
            for xb in _batches(calib_x, batch_size):
                model(xb)


class FullTensorGPTQ(GPTQ):
    """Brevitas' GPTQ, but each column's quantized value is read from the whole quantized weight tensor.

    Brevitas 0.13 quantizes single weight columns of QuantLinear / non-grouped conv layers by slicing
    (``subtensor_slice_list``); with statistics-based weight scales (recomputed from the tensor, like the zoo's
    per-channel absmax scales) the scale is then computed from the one-column slice alone, every weight quantizes to
    itself and GPTQ becomes a no-op. Quantizing the full tensor keeps the layer's real scales.
    """

    def get_quant_weights(self, i, i1, permutation_list, with_quant_history=False):
        if with_quant_history:
            return super().get_quant_weights(i, i1, permutation_list, with_quant_history)
        qw = _unpack_quant_tensor(self.layer.quant_weight(quant_input=self.quant_metadata))
        if isinstance(self.layer, nn.modules.conv._ConvNd) and is_conv_transposed(self.layer):
            qw = qw.transpose(1, 0)
        qw = qw.flatten(1)
        qw = qw.view(self.groups, -1, qw.shape[-1])  # [groups, OC/groups, IC]
        col = i1 + i
        return torch.stack([qw[g, :, permutation_list[g][col]] for g in range(self.groups)])


@torch.no_grad()
def _run_gptq(model, calib_x, batch_size, act_order):
    with gptq_mode(model, create_weight_orig=False, use_quant_activations=True, act_order=act_order,
                   gptq_class=FullTensorGPTQ) as gptq:
        for _ in range(gptq.num_layers):
            for xb in _batches(calib_x, batch_size):
                gptq.model(xb)
            gptq.update()


@torch.no_grad()
def _run_bias_correction(model, calib_x, batch_size):
    with bias_correction_mode(model):
        for xb in _batches(calib_x, batch_size):
            model(xb)


def quantize_ptq(
    float_model: nn.Module,
    quant_model: nn.Module,
    calib_x,
    techniques=("calibrate",),
    batch_size: int = 256,
    alpha: float = 0.5,
    act_order: bool = False,
    report: dict | None = None,
) -> nn.Module:
    """Post-training-quantize ``quant_model`` (in place) from ``float_model``'s weights; returns ``quant_model``.

    ``techniques`` is any subset of :data:`TECHNIQUES`; they are applied in the fixed order act_equalization,
    calibrate, gptq, bias_correction regardless of the order given. ``alpha`` is the SmoothQuant migration strength
    for act_equalization, ``act_order`` GPTQ's Hessian ordering. If ``report`` is a dict it receives ``applied``
    (list), ``skipped`` ({technique: reason}) and ``seconds`` ({technique: wall time}).
    """
    techniques = tuple(techniques)
    unknown = [t for t in techniques if t not in TECHNIQUES]
    if unknown:
        raise PTQError(f"unknown PTQ technique(s) {unknown}; supported: {', '.join(TECHNIQUES)}")
    if len(calib_x) == 0:
        raise PTQError("quantize_ptq: calibration data calib_x is empty")
    rep = report if report is not None else {}
    rep.update(applied=[], skipped={}, seconds={})
    copy_float_weights(float_model, quant_model)
    quant_model.eval()
    for tech in TECHNIQUES:
        if tech not in techniques:
            continue
        reason = _applicability(quant_model, tech)
        if reason is not None:
            log.warning("PTQ: skipping %s for %s: %s", tech, type(quant_model).__name__, reason)
            rep["skipped"][tech] = reason
            continue
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Hooks detected during setup for GPxQ")
            if tech == "calibrate":
                _run_calibrate(quant_model, calib_x, batch_size)
            elif tech == "act_equalization":
                _run_act_equalization(quant_model, calib_x, batch_size, alpha)
            elif tech == "gptq":
                _run_gptq(quant_model, calib_x, batch_size, act_order)
            elif tech == "bias_correction":
                _run_bias_correction(quant_model, calib_x, batch_size)
        rep["seconds"][tech] = time.perf_counter() - t0
        rep["applied"].append(tech)
        log.info("PTQ: applied %s in %.2f s", tech, rep["seconds"][tech])
    quant_model.eval()
    return quant_model


def best_ptq(
    float_model: nn.Module,
    quant_model: nn.Module,
    calib_x,
    calib_y,
    technique_sets: dict | None = None,
    holdout_fraction: float = 0.25,
    seed: int = 0,
    **ptq_kwargs,
):
    """Try several technique sets and keep the most accurate; returns (model, technique_name, table).

    ``calib_x``/``calib_y`` are split (seeded) into a calibration part and a held-out part
    (``holdout_fraction``); each technique set in ``technique_sets`` ({name: techniques}, default
    :data:`DEFAULT_TECHNIQUE_SETS`) is applied to a fresh deep copy of ``quant_model`` (which is not modified) and
    scored by held-out accuracy. Ties go to the earlier (simpler) set. ``table`` is a list of dicts with
    ``name``, ``techniques``, ``applied``, ``skipped``, ``holdout_acc``, ``seconds``.
    """
    sets = dict(technique_sets or DEFAULT_TECHNIQUE_SETS)
    if not sets:
        raise PTQError("best_ptq: technique_sets is empty")
    n = len(calib_x)
    n_hold = int(round(n * holdout_fraction))
    if n_hold < 1 or n - n_hold < 1:
        raise PTQError(f"best_ptq: {n} calibration samples cannot be split with holdout_fraction={holdout_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    hold, cal = perm[:n_hold], perm[n_hold:]
    x_np = calib_x.numpy() if isinstance(calib_x, torch.Tensor) else np.asarray(calib_x)
    y_np = calib_y.numpy() if isinstance(calib_y, torch.Tensor) else np.asarray(calib_y)
    table, best = [], None
    for name, techs in sets.items():
        model = copy.deepcopy(quant_model)
        rep = {}
        t0 = time.perf_counter()
        quantize_ptq(float_model, model, x_np[cal], techniques=techs, report=rep, **ptq_kwargs)
        acc = evaluate(model, x_np[hold], y_np[hold])
        row = {
            "name": name,
            "techniques": list(techs),
            "applied": rep["applied"],
            "skipped": rep["skipped"],
            "holdout_acc": acc,
            "seconds": time.perf_counter() - t0,
        }
        table.append(row)
        log.info("best_ptq: %s -> held-out accuracy %.4f", name, acc)
        if best is None or acc > best[2]:
            best = (model, name, acc)
    return best[0], best[1], table
