"""Hardware-exact accuracy: the hardware graph (host input quantization, every hardware op's bit-exact Python model,
host output dequantization) run on a test set. ``built_hardware_graph`` gives the graph as built: the dataflow
parent holding the build's last partition model (folded, each requantizer in the style the folding chose: a
conversion requantizer's codes may differ from the thresholds' of ``step_convert_to_hw``'s model).

This is the accuracy of the accelerator: each hardware op's Python model equals its cppsim/rtlsim bit for bit
(the verification ladder checks that on sample images), and where a hardware op defines its own arithmetic (the
softmax's and LayerNorm's fixed-point contracts) it differs from the lowered graph's float island.

``hardware_logits`` runs the graph batched (``compiler.batched_exec``: every node once per chunk of ``batch_size``
images), in ``workers`` local processes, with a progress bar. ``hardware_logits_per_image`` is the reference
executor: qonnx ``execute_onnx`` image by image (the hardware graph has batch 1); both give the same logits bit for
bit (tests/test_batched_exec.py, the benchmark in tests/test_bench_hw_accuracy.py measures their speeds).
"""

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from tqdm import tqdm

import custom_ops  # noqa: F401  (registers the hardware ops, also in every worker process)
from compiler.batched_exec import DEFAULT_BATCH_SIZE, PARTITION_OP, BatchedGraph
from compiler.finn_env import ensure_finn_offline
from compiler.runner import STEPS
from passes.compare import execute_lowered  # exact tensors as they are (wide accumulators are Python ints)

_MODEL = None
_GRAPH = None

#: the file ``built_hardware_graph`` writes under the build's intermediate_models/
HARDWARE_GRAPH = "hardware_graph.onnx"


def built_hardware_graph(build_dir):
    """Write ``build_dir``/intermediate_models/hardware_graph.onnx: ``dataflow_parent.onnx`` with its dataflow
    partition replaced by the last partition model the build saved (the latest step after
    ``step_create_dataflow_partition``, in step order); returns its path."""
    inter = Path(build_dir) / "intermediate_models"
    order = list(STEPS)
    after = order[order.index("step_create_dataflow_partition"):]
    last = next((inter / f"{s}.onnx" for s in reversed(after) if (inter / f"{s}.onnx").is_file()), None)
    parent_path = inter / "dataflow_parent.onnx"
    if last is None or not parent_path.is_file():
        raise FileNotFoundError(f"{inter}: no dataflow partition was saved (run the build through "
                                "step_create_dataflow_partition with save_intermediate_models)")
    parent = ModelWrapper(str(parent_path))
    for node in parent.get_nodes_by_op_type(PARTITION_OP):
        getCustomOp(node).set_nodeattr("model", str(last.resolve()))
    path = inter / HARDWARE_GRAPH
    parent.save(str(path))
    return path


def _init(path, batched):
    global _MODEL, _GRAPH
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ensure_finn_offline()
    if batched:
        _GRAPH = BatchedGraph(path)
    else:
        _MODEL = ModelWrapper(str(path))


def _logits_batched(chunk):
    return np.asarray(_GRAPH.run(chunk)[_GRAPH.outputs[0]], dtype=np.float32).reshape(len(chunk), -1)


def _logits_per_image(chunk):
    iname, oname = _MODEL.graph.input[0].name, _MODEL.graph.output[0].name
    return np.stack([np.asarray(execute_lowered(_MODEL, {iname: x[None]})[oname], dtype=np.float32).reshape(-1)
                     for x in chunk])


def _run(model_path, x, chunk, workers, progress, batched):
    x = np.asarray(x, dtype=np.float32)
    chunks = [x[i:i + chunk] for i in range(0, len(x), chunk)]
    fn = _logits_batched if batched else _logits_per_image
    out = []
    with tqdm(total=len(x), desc="hardware-exact", unit="img", dynamic_ncols=True, disable=not progress) as bar:
        if workers <= 1:
            _init(model_path, batched)
            for c in chunks:
                out.append(fn(c))
                bar.update(len(c))
        else:
            with ProcessPoolExecutor(max_workers=workers, initializer=_init,
                                     initargs=(str(model_path), batched)) as pool:
                for c, res in zip(chunks, pool.map(fn, chunks)):
                    out.append(res)
                    bar.update(len(c))
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def hardware_logits(model_path, x, batch_size=DEFAULT_BATCH_SIZE, workers=1, progress=True):
    """Logits (N, classes) of the hardware graph at ``model_path`` for every image in ``x`` (N, ...), in order: the
    graph run batched, ``batch_size`` images at a time, the chunks split over ``workers`` local processes."""
    return _run(model_path, x, batch_size, workers, progress, batched=True)


def hardware_logits_per_image(model_path, x, workers=1, chunk=50, progress=True):
    """``hardware_logits`` by the reference executor: qonnx ``execute_onnx`` on one image at a time (chunks of
    ``chunk`` images per worker task)."""
    return _run(model_path, x, chunk, workers, progress, batched=False)


def hardware_exact_accuracy(model_path, x, y, batch_size=DEFAULT_BATCH_SIZE, workers=1, progress=True):
    """(accuracy, logits) of the hardware graph on (x, y)."""
    logits = hardware_logits(model_path, x, batch_size=batch_size, workers=workers, progress=progress)
    return float(np.mean(logits.argmax(1) == np.asarray(y))), logits
