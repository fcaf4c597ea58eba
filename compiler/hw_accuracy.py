"""Hardware-exact accuracy: the converted hardware graph (``step_convert_to_hw``'s model: host input quantization,
every hardware op's bit-exact Python model, host output dequantization) run on a test set.

This is the accuracy of the accelerator: each hardware op's Python model equals its cppsim/rtlsim bit for bit
(the verification ladder checks that on sample images), and where a hardware op defines its own arithmetic (the
softmax's and LayerNorm's fixed-point contracts) it differs from the lowered graph's float island. The hardware
graph has batch 1, so images run one by one, split over ``workers`` local processes, with a progress bar.
"""

import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from tqdm import tqdm

import custom_ops  # noqa: F401  (registers the hardware ops, also in every worker process)
from compiler.finn_env import ensure_finn_offline
from passes.compare import execute_lowered  # exact tensors as they are (wide accumulators are Python ints)

_MODEL = None


def _init(path):
    global _MODEL
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ensure_finn_offline()
    _MODEL = ModelWrapper(str(path))


def _logits(chunk):
    iname, oname = _MODEL.graph.input[0].name, _MODEL.graph.output[0].name
    return np.stack([np.asarray(execute_lowered(_MODEL, {iname: x[None]})[oname], dtype=np.float32).reshape(-1)
                     for x in chunk])


def hardware_logits(model_path, x, workers=2, chunk=50, progress=True):
    """Logits of the hardware graph at ``model_path`` for every image in ``x`` (N, ...), in order."""
    x = np.asarray(x, dtype=np.float32)
    chunks = [x[i:i + chunk] for i in range(0, len(x), chunk)]
    bar = None
    if progress:
        bar = tqdm(total=len(x), desc="hardware-exact", unit="img", dynamic_ncols=True)
    out = []
    if workers <= 1:
        _init(model_path)
        for c in chunks:
            out.append(_logits(c))
            if bar is not None:
                bar.update(len(c))
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=_init, initargs=(str(model_path),)) as pool:
            for c, res in zip(chunks, pool.map(_logits, chunks)):
                out.append(res)
                if bar is not None:
                    bar.update(len(c))
    if bar is not None:
        bar.close()
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def hardware_exact_accuracy(model_path, x, y, workers=2, progress=True):
    """(accuracy, logits) of the hardware graph on (x, y)."""
    logits = hardware_logits(model_path, x, workers=workers, progress=progress)
    return float(np.mean(logits.argmax(1) == np.asarray(y))), logits
