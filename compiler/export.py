"""QONNX export of Brevitas models, and the check of an export against its Brevitas model.

``export_qonnx_model`` runs Brevitas' QONNX exporter with ``dynamo=False`` (the dynamo exporter silently drops the
quantizers inside ``QuantMultiheadAttention``, README "Your own Brevitas model"), then cleans the graph up and
records the number format of every quantizer.

Cleanup (``cleanup=True``) is qonnx's ``cleanup_model`` with two changes, because minifinn's passes need every
weight quantizer with its format:

* constant folding (``passes.fold_constants.FoldConstantSubgraphs``: qonnx' ``FoldConstants`` in one sweep, the same
  result without re-inferring the shapes of the whole model after every folded node) leaves ``FloatQuant`` nodes
  alone (qonnx preserves ``Quant``/``BipolarQuant`` and ONNX QDQ nodes only, so it folds the weight ``FloatQuant``
  nodes into plain float initializers on the grid and their format is lost);
* a ``Transpose`` fed only by a constant ``FloatQuant`` (weights of MatMul-style linears) is folded into the
  quantizer's initializers, as qonnx's ``FoldTransposeIntoQuantInit`` does for ``Quant``.

Everything else is the same: shape inference, unique parameter tensors, constant folding of the non-quantizer
constant subgraphs (Shape/Gather/Concat chains, the ViT's Pad/Add of the class token), removal of unused tensors and
static inputs, unique node names and readable tensor names. The cleaned graph is then put in the canonical form the
lowering maps (``passes.lower.canonicalize``, exact rewrites): the batch leading every tensor (Brevitas'
``QuantMultiheadAttention`` works sequence-first), quantizers next to float islands and in front of a Concat with
constants (torchvision's class token). So a torchvision ViT's export runs in batches like the zoo's.

Formats are recorded (``compiler.qonnx_formats.record_formats``) after the renaming, so the recorded names are
those of the returned model: ``{quantizer output tensor name: qonnx type name}`` ("FLOAT<3,2,3>", "INT4", "UINT8",
"BIPOLAR"), stored in the model's ``metadata_props`` under ``"minifinn_formats"`` (JSON). ``fold_weights=True``
then folds the constant quantizers like qonnx's cleanup would; the folded weight initializers keep the recorded
names.

Golden execution of the exported graph is ``compiler.golden.execute_qonnx``; ``compare_with_brevitas`` runs both.
"""

import os
import tempfile

import numpy as np
import torch
from brevitas.export import export_qonnx
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.fold_constants import FoldConstantsFiltered
from qonnx.transformation.general import (
    GiveReadableTensorNames,
    GiveUniqueNodeNames,
    GiveUniqueParameterTensors,
    RemoveStaticGraphInputs,
    RemoveUnusedTensors,
)
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

from compiler.errors import MinifinnError
from compiler.golden import as_numpy, execute_qonnx
from compiler.qonnx_formats import QUANT_OP_TYPES, is_const_quant, record_formats
from passes.float_quant_init import FoldTransposeIntoFloatQuantInit
from passes.fold_constants import FoldConstantSubgraphs
from passes.lower import canonicalize

QONNX_DOMAIN = "qonnx.custom_op.general"


class ExportError(MinifinnError):
    """A model that cannot be exported or compared as asked."""


# ---------------------------------------------------------------------------------------------------------------
# graph transformations
# ---------------------------------------------------------------------------------------------------------------


def cleanup_keep_quantizers(model):
    """qonnx's ``cleanup_model`` without folding the constant ``FloatQuant``/``Quant`` nodes, in the canonical form
    (see module doc)."""
    for node in model.graph.node:
        if node.op_type in QUANT_OP_TYPES + ("Trunc",):
            node.domain = QONNX_DOMAIN
    for transformation in (
        InferShapes(),
        GiveUniqueParameterTensors(),
        FoldConstantSubgraphs(exclude_op_types=list(QUANT_OP_TYPES) + ["Trunc"]),
        FoldTransposeIntoQuantInit(),
        FoldTransposeIntoFloatQuantInit(),
        RemoveUnusedTensors(),
        RemoveStaticGraphInputs(),
        InferShapes(),
    ):
        model = model.transform(transformation)
    model = canonicalize(model)
    for transformation in (GiveUniqueNodeNames(), GiveReadableTensorNames(), InferShapes()):
        model = model.transform(transformation)
    return model


def fold_weight_quantizers(model):
    """Fold every quantizer whose inputs are all constants (what qonnx's cleanup does to weight ``FloatQuant``s):
    the weights become float initializers on the grid, named like the quantizer outputs they replace."""
    model = model.transform(FoldConstantsFiltered(lambda m, n: is_const_quant(m, n)))
    return model.transform(RemoveUnusedTensors())


# ---------------------------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------------------------


def export_qonnx_model(model, example_input, path, cleanup=True, fold_weights=False):
    """Export a Brevitas model to QONNX at ``path`` and return it as a ``ModelWrapper``.

    ``example_input``: a tensor with the model's input shape (its batch size becomes the graph's; ``execute_qonnx``
    changes it). ``cleanup=False`` returns the raw export (formats recorded on its names). ``fold_weights=True``
    (needs ``cleanup``) folds constant quantizers after recording their formats, like qonnx's ``cleanup_model``.
    The model is put in eval mode (export freezes calibrated scales).
    """
    if fold_weights and not cleanup:
        raise ExportError("fold_weights=True needs cleanup=True (folding runs after the cleanup and renaming)")
    if not isinstance(example_input, torch.Tensor):
        example_input = torch.as_tensor(np.asarray(example_input), dtype=torch.float32)
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        with tempfile.TemporaryDirectory(prefix="minifinn_export_") as tmp:
            raw_path = os.path.join(tmp, "raw.onnx")
            with torch.no_grad():
                export_qonnx(model, example_input, export_path=raw_path, dynamo=False)
            qmodel = ModelWrapper(raw_path)
    finally:
        model.train(was_training)
    if cleanup:
        qmodel = cleanup_keep_quantizers(qmodel)
    record_formats(qmodel)
    if fold_weights:
        qmodel = fold_weight_quantizers(qmodel)
    qmodel.save(path)
    return qmodel


def compare_with_brevitas(model_torch, qonnx_model, x, batch_size=64):
    """Run the Brevitas model and its QONNX export on ``x``; returns max/mean abs logit difference, the largest
    |logit| (for scale), the fraction of samples whose argmax agrees, and the sample count."""
    x_np = as_numpy(x)
    if x_np.ndim < 1 or len(x_np) == 0:
        raise ExportError(f"compare_with_brevitas needs a non-empty batch, got shape {x_np.shape}")
    was_training = model_torch.training
    model_torch.eval()
    try:
        with torch.no_grad():  # in chunks too: a whole test set through a ViT at once needs GBs for the scores
            step = max(1, int(batch_size or len(x_np)))
            ref = np.concatenate([
                model_torch(torch.from_numpy(x_np[i:i + step])).detach().cpu().numpy().astype(np.float32)
                for i in range(0, len(x_np), step)
            ])
    finally:
        model_torch.train(was_training)
    got = execute_qonnx(qonnx_model, x_np, batch_size=batch_size)
    if ref.shape != got.shape:
        raise ExportError(f"Brevitas output shape {ref.shape} differs from the QONNX output shape {got.shape}")
    diff = np.abs(ref.astype(np.float64) - got.astype(np.float64))
    return {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "max_abs_logit": float(np.abs(ref).max()),
        "argmax_agreement": float(np.mean(ref.argmax(axis=-1) == got.argmax(axis=-1))),
        "num_samples": int(len(x_np)),
        # samples whose logits differ by more than fp32 summation noise (a quantizer input on the other side of a
        # rounding tie moves its code by one step, and the step travels on)
        "samples_off_by_more_than_1e-4": int(np.sum(diff.reshape(len(x_np), -1).max(axis=1) > 1e-4)),
    }
