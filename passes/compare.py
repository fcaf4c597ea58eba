"""Compare a lowered graph with its QONNX original: activation codes per quantizer and final outputs.

``compare_lowered(qonnx_model, lowered_model, x)`` runs both with qonnx' ``execute_onnx`` (the full execution
context) on a batch of inputs and reports, for every activation quantizer of the original graph, how many codes
differ (the lowered graph's values tensor vs ``format.quantize(original_output / scale)``), plus argmax agreement
and the largest output difference. In the reference semantics (docs/lowered_graph.md) such differences come only
from fp32 rounding in QONNX near rounding ties (and the fp32 noise they propagate).
"""

import contextlib
import json
import os

import numpy as np
from qonnx.core.onnx_exec import execute_onnx

from compiler.errors import MinifinnError
from compiler.qonnx_formats import format_from_datatype
from passes.lower import set_batch_size
from passes.lowering.walker import LOWERED_MAP_KEY


class CompareError(MinifinnError):
    """The two models cannot be compared (no quantizer map, different inputs)."""


def lowered_quantizers(lowered):
    """{activation quantizer output of the original graph: {"values": values tensor of the lowered graph, "format":
    qonnx type name, "scale": float or None}}, as the lowering walk records it in the model's metadata."""
    text = lowered.get_metadata_prop(LOWERED_MAP_KEY)
    if text is None:
        raise CompareError(f"the lowered model has no '{LOWERED_MAP_KEY}' metadata; lower it with passes.lower_qonnx")
    return json.loads(text)


@contextlib.contextmanager
def exact_execution():
    """qonnx' execute_onnx without its float rounding of integer-annotated tensors (``SANITIZE_QUANT_TENSORS=0``):
    the lowered graph's accumulators are exact already, and those beyond 62 bits are Python-int object arrays,
    which qonnx' rounding check cannot handle."""
    old = os.environ.get("SANITIZE_QUANT_TENSORS")
    os.environ["SANITIZE_QUANT_TENSORS"] = "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["SANITIZE_QUANT_TENSORS"]
        else:
            os.environ["SANITIZE_QUANT_TENSORS"] = old


def execute_lowered(model, inputs, **kwargs):
    """``execute_onnx`` of a lowered graph under ``exact_execution``."""
    with exact_execution():
        return execute_onnx(model, inputs, **kwargs)


def _run(model, x, batch_size, names, exact=False):
    iname = model.graph.input[0].name
    oname = model.graph.output[0].name
    bs = min(batch_size, len(x))
    run_model = set_batch_size(model, bs) if model.get_tensor_shape(iname)[0] != bs else model
    collected = {n: [] for n in names + [oname]}
    for start in range(0, len(x), bs):
        chunk = x[start:start + bs]
        n = len(chunk)
        if n < bs:
            chunk = np.concatenate([chunk, np.zeros((bs - n,) + chunk.shape[1:], dtype=np.float32)])
        if exact:
            ctx = execute_lowered(run_model, {iname: chunk}, return_full_exec_context=True)
        else:
            ctx = execute_onnx(run_model, {iname: chunk}, return_full_exec_context=True)
        for name in collected:
            collected[name].append(np.asarray(ctx[name])[:n])
    return {k: np.concatenate(v) for k, v in collected.items()}, oname


def compare_lowered(qonnx_model, lowered, x, batch_size=50, labels=None, keep_logits=False):
    """Report (dict) of code mismatches per quantizer tensor, argmax agreement, output difference, accuracies;
    ``keep_logits`` adds the lowered graph's outputs (``logits_lowered``, an array)."""
    x = np.asarray(x, dtype=np.float32)
    qmap = lowered_quantizers(lowered)
    ref, ref_out = _run(qonnx_model, x, batch_size, list(qmap))
    low, low_out = _run(lowered, x, batch_size, [v["values"] for v in qmap.values()], exact=True)
    tensors = {}
    total = differ = 0
    for orig, info in qmap.items():
        fmt = format_from_datatype(info["format"], orig)
        scale = np.float32(info["scale"])
        ref_vals = fmt.quantize(ref[orig] / scale)
        low_vals = low[info["values"]]
        if ref_vals.shape != low_vals.shape:
            raise CompareError(f"{orig}: shapes differ ({ref_vals.shape} vs {low_vals.shape})")
        n_diff = int(np.sum(ref_vals != low_vals))
        tensors[orig] = {"format": info["format"], "codes": int(ref_vals.size), "differing": n_diff,
                         "fraction": n_diff / max(1, ref_vals.size)}
        total += ref_vals.size
        differ += n_diff
    r, l = ref[ref_out].reshape(len(x), -1), low[low_out].reshape(len(x), -1)
    report = {
        "images": int(len(x)),
        "tensors": tensors,
        "codes": int(total),
        "differing_codes": int(differ),
        "differing_fraction": differ / max(1, total),
        "tensors_with_differences": sum(1 for t in tensors.values() if t["differing"]),
        "argmax_agreement": float(np.mean(r.argmax(1) == l.argmax(1))),
        "max_abs_output_diff": float(np.max(np.abs(r - l))),
    }
    if labels is not None:
        labels = np.asarray(labels)
        report["accuracy_qonnx"] = float(np.mean(r.argmax(1) == labels))
        report["accuracy_lowered"] = float(np.mean(l.argmax(1) == labels))
    if keep_logits:
        report["logits_lowered"] = l
    return report
