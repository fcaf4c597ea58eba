"""Up-front checks of everything a build is given, before any work: the model file, its graph, the output folder,
the config files and the verification input.

Every check returns a list of problems, one sentence each naming the file, node, tensor or field at fault, what was
found and what to do. The runner (``compiler.runner.prepare_build``) collects the problems of all checks and raises
one ``ValidationError`` listing them, so a user fixes everything at once; the command line prints it without a
traceback and exits with code 2.

The graph rules are those the build relies on: one graph input and one output, fully static shapes with batch 1 and
no empty dimension, every tensor defined once (unique node and tensor names, no undefined input, no cycle), finite
initializers, usable quantizer scales (finite, > 0, normal float32) and batch-norm variances (var + epsilon > 0).
"""

import json
import os
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper

from compiler.errors import FormatError, MinifinnError
from compiler.numerics import check_scale

#: quantizer op types whose input 1 is a scale
SCALED_QUANTIZERS = ("Quant", "FloatQuant", "BipolarQuant", "Trunc")
#: steps that run the model on sample inputs (verify_input_npy): name -> does it need them under this config
SAMPLE_INPUT_STEPS = {
    "step_fifo_sizing": lambda cfg: cfg.fifo_sizing == "rtlsim",
    "step_verify": lambda cfg: True,
}
EXPORT_HINT = "export with a fixed example input of batch 1 (compiler.export.export_qonnx_model)"


class ValidationError(MinifinnError):
    """Problems found before the build started; ``problems`` lists them (the message too)."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__(format_problems(self.problems))


def format_problems(problems):
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


# --- model file -------------------------------------------------------------------------------------------------
def load_model(path):
    """``(ModelWrapper or None, problems)`` for a model file: it exists, is a readable non-empty ONNX file."""
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not text or not text.strip():
        return None, [f"model file name is empty ({path!r}); give the path of a QONNX model (.onnx)"]
    p = Path(text)
    if not p.exists():
        return None, [f"model file {p} does not exist"]
    if p.is_dir():
        return None, [f"model file {p} is a folder, not an ONNX file"]
    try:
        data = p.read_bytes()
    except OSError as err:
        return None, [f"model file {p} cannot be read ({err.strerror or err})"]
    if not data:
        return None, [f"model file {p} is empty (0 bytes); export the model again"]
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as err:  # protobuf decode errors
        return None, [f"{p} is not a readable ONNX model ({type(err).__name__}: {err}); export it with "
                      "compiler.export.export_qonnx_model or brevitas.export.export_qonnx"]
    try:
        model = ModelWrapper(proto)
    except Exception as err:  # qonnx' own checks trip over a malformed graph: say what is wrong with it
        return None, graph_problems(proto, str(p)) or [
            f"{p} is not a usable ONNX model ({type(err).__name__}: {err}); export it with "
            "compiler.export.export_qonnx_model or brevitas.export.export_qonnx"]
    return model, []


# --- graph --------------------------------------------------------------------------------------------------------
def _dims(value_info):
    """[(index, value or None, symbol or None)] of a tensor's shape, or None without a shape."""
    tt = value_info.type.tensor_type
    if not value_info.type.HasField("tensor_type") or not tt.HasField("shape"):
        return None
    return [(i, d.dim_value if d.HasField("dim_value") else None, d.dim_param or None)
            for i, d in enumerate(tt.shape.dim)]


def _shape_text(dims):
    return "[" + ", ".join(str(v) if v is not None else (s or "?") for _, v, s in dims) + "]"


def _shape_problems(vi, what, source, batch_one=False):
    dims = _dims(vi)
    if not vi.type.HasField("tensor_type"):
        return [f"{source}: {what} {vi.name!r} has no tensor type; {EXPORT_HINT}"]
    if dims is None:
        return [f"{source}: {what} {vi.name!r} has no shape; {EXPORT_HINT}"]
    problems = []
    shape = _shape_text(dims)
    for i, value, symbol in dims:
        if value is None:
            name = f"symbolic dimension {symbol!r}" if symbol else "an unknown dimension"
            problems.append(f"{source}: {what} {vi.name!r} has {name} at axis {i} (shape {shape}); minifinn needs "
                            f"fully static shapes: {EXPORT_HINT}, without dynamic axes")
            break
        if value == 0:
            problems.append(f"{source}: {what} {vi.name!r} has an empty dimension (0) at axis {i} (shape {shape})")
            break
    else:
        if batch_one and dims and dims[0][1] != 1:
            problems.append(f"{source}: {what} {vi.name!r} has batch size {dims[0][1]} (shape {shape}); minifinn "
                            f"builds batch-1 models: {EXPORT_HINT}")
    return problems


def _consumers(graph):
    users = defaultdict(list)
    for node in graph.node:
        for t in node.input:
            if t:
                users[t].append(node.name or node.op_type)
    return users


def _cycle_nodes(graph, produced_by):
    """Names of the nodes on or behind a cycle (Kahn's algorithm leaves them unsorted)."""
    nodes = list(graph.node)
    deps = [{produced_by[t] for t in n.input if t in produced_by} for n in nodes]
    users = defaultdict(list)
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    indeg = [len(d) for d in deps]
    ready = [i for i, k in enumerate(indeg) if k == 0]
    done = 0
    while ready:
        i = ready.pop()
        done += 1
        for j in users[i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                ready.append(j)
    return [nodes[i].name or nodes[i].op_type for i, k in enumerate(indeg) if k > 0]


def _float_array(init):
    if init.data_type not in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16):
        return None
    try:
        return np.asarray(numpy_helper.to_array(init), dtype=np.float64)
    except Exception:  # a malformed tensor: reported by the lowering, which reads it
        return None


def graph_problems(model, source="the model"):
    """Problems of the graph of ``model`` (ModelWrapper or ModelProto) that the build cannot handle."""
    graph = model.graph
    if len(graph.node) == 0:
        return [f"{source}: the graph has no nodes (an empty model); {EXPORT_HINT}"]
    problems = []
    inits = {i.name: i for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    users = _consumers(graph)
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs) or "none"
        problems.append(f"{source}: the graph has {len(inputs)} inputs ({names}); minifinn builds models with one "
                        "input")
    for vi in inputs:
        problems += _shape_problems(vi, "graph input", source, batch_one=True)
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type != TensorProto.FLOAT:
            kind = TensorProto.DataType.Name(vi.type.tensor_type.elem_type)
            problems.append(f"{source}: graph input {vi.name!r} has element type {kind}; minifinn builds float32 "
                            "inputs (the first quantizer of the model quantizes them)")
    outputs = [o.name for o in graph.output]
    for name, count in Counter(outputs).items():
        if count > 1:
            problems.append(f"{source}: graph output {name!r} is listed {count} times; list each output once")
    if len(set(outputs)) != 1:
        names = ", ".join(map(repr, dict.fromkeys(outputs))) or "none"
        problems.append(f"{source}: the graph has {len(set(outputs))} outputs ({names}); minifinn builds models with "
                        "one output")
    for vi in graph.output:
        if _dims(vi) is not None:
            problems += _shape_problems(vi, "graph output", source)
    for vi in graph.value_info:
        dims = _dims(vi) or []
        if any(v == 0 for _, v, _ in dims):
            problems.append(f"{source}: tensor {vi.name!r} has an empty dimension (shape {_shape_text(dims)})")
    # names: every node name and every tensor defined once
    for name, count in Counter(n.name for n in graph.node if n.name).items():
        if count > 1:
            ops = sorted({n.op_type for n in graph.node if n.name == name})
            problems.append(f"{source}: node name {name!r} is used by {count} nodes ({', '.join(ops)}); node names "
                            "must be unique")
    produced_by, defined = {}, set(inits) | {i.name for i in graph.input}
    for index, node in enumerate(graph.node):
        label = f"node {node.name or '#' + str(index)!r} ({node.op_type})"
        for t in node.output:
            if not t:
                continue
            if t in produced_by:
                other = graph.node[produced_by[t]]
                problems.append(f"{source}: tensor {t!r} is produced twice (by {other.name or other.op_type!r} and "
                                f"{label}); tensor names must be unique")
            elif t in defined:
                problems.append(f"{source}: {label} writes tensor {t!r}, which is already a graph input or "
                                "initializer")
            produced_by[t] = index
    defined |= set(produced_by)
    for index, node in enumerate(graph.node):
        for t in node.input:
            if t and t not in defined:
                problems.append(f"{source}: node {node.name or '#' + str(index)!r} ({node.op_type}) reads tensor "
                                f"{t!r}, which no node, graph input or initializer defines")
    for name in outputs:
        if name not in defined:
            problems.append(f"{source}: graph output {name!r} is not produced by any node")
    cyclic = _cycle_nodes(graph, produced_by)
    if cyclic:
        shown = ", ".join(repr(n) for n in cyclic[:6]) + (" ..." if len(cyclic) > 6 else "")
        problems.append(f"{source}: the graph has a cycle through nodes {shown}; an ONNX graph must be acyclic")
    problems += _initializer_problems(graph, inits, users, source)
    return problems


def _initializer_problems(graph, inits, users, source):
    problems = []
    for name, init in inits.items():
        arr = _float_array(init)
        if arr is not None and not np.all(np.isfinite(arr)):
            bad = arr[~np.isfinite(arr)]
            kinds = " and ".join(k for k, m in (("NaN", np.isnan(bad)), ("inf", np.isinf(bad))) if m.any())
            readers = ", ".join(repr(u) for u in users.get(name, [])) or "no node"
            problems.append(f"{source}: initializer {name!r} (read by {readers}) holds {kinds} ({bad.size} of "
                            f"{arr.size} values); weights and parameters must be finite")
    for node in graph.node:
        label = f"node {node.name or node.op_type!r} ({node.op_type})"
        if node.op_type in SCALED_QUANTIZERS and len(node.input) > 1 and node.input[1] in inits:
            arr = _float_array(inits[node.input[1]])
            if arr is not None and np.all(np.isfinite(arr)):  # non-finite scales are reported above
                try:
                    check_scale(arr)
                except FormatError as err:
                    problems.append(f"{source}: {label}: {err}")
        if node.op_type == "BatchNormalization" and len(node.input) > 4 and node.input[4] in inits:
            var = _float_array(inits[node.input[4]])
            eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
            if var is not None and np.all(np.isfinite(var)) and np.any(var + eps <= 0):
                channels = np.flatnonzero(var.ravel() + eps <= 0)
                problems.append(f"{source}: {label}: variance + epsilon <= 0 in channel(s) "
                                f"{', '.join(map(str, channels[:8]))}{' ...' if len(channels) > 8 else ''} "
                                f"(variance {var.ravel()[channels[0]]:g}); a variance must be >= 0")
    return problems


def input_shape(model):
    """Name and static shape of the model's one graph input (None when it has none or it is not static)."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        return None
    dims = _dims(inputs[0])
    if dims is None or any(v is None or v == 0 for _, v, _ in dims):
        return None
    return inputs[0].name, [v for _, v, _ in dims]


# --- output folder, config files, verification input ---------------------------------------------------------------
def output_dir_problems(path):
    """The output folder exists as a writable folder or can be created (its nearest existing parent is a writable
    folder). Tested by creating and removing a temporary folder, so read-only file systems are caught too."""
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else ""
    if not text.strip():
        return ["output_dir is empty; name a folder, e.g. --output-dir out/build"]
    p = Path(text)
    if p.exists() and not p.is_dir():
        return [f"output_dir {p} is a file, not a folder; choose another --output-dir"]
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        return [f"output_dir {p} cannot be created: {probe} is a file"]
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".minifinn_probe_", dir=probe))
    except OSError as err:
        where = "" if probe == p else f" (in {probe})"
        return [f"output_dir {p} is not writable{where}: {err.strerror or err}; choose another --output-dir"]
    return []


def config_file_problems(cfg):
    """``folding_config_file`` and ``specialize_layers_config_file`` exist and hold a JSON mapping of node name (or
    "Defaults") to a mapping of attributes (FINN's format); which nodes they name is checked by their steps."""
    problems = []
    for field in ("folding_config_file", "specialize_layers_config_file"):
        value = getattr(cfg, field)
        if not isinstance(value, str):
            continue
        p = Path(value)
        if not p.is_file():
            problems.append(f"{field}: {p} does not exist" if not p.exists() else f"{field}: {p} is not a file")
            continue
        try:
            data = json.loads(p.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            problems.append(f"{field}: {p} is not valid JSON ({err})")
            continue
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            problems.append(f"{field}: {p} must map node names (or \"Defaults\") to attribute mappings, e.g. "
                            '{"MinifloatMVAU_rtl_0": {"PE": 2}}')
    return problems


def needs_sample_inputs(names, cfg):
    """The steps among ``names`` that run the model on sample inputs under ``cfg``."""
    return [n for n in names if n in SAMPLE_INPUT_STEPS and SAMPLE_INPUT_STEPS[n](cfg)]


def verify_input_problems(path, shape_info, field="verify_input_npy"):
    """The verification input: an existing .npy file (np.save) of a numeric, finite array holding N >= 1 inputs of
    the model's input shape without its batch axis, i.e. shape (N, *input_shape[1:]). ``shape_info``: the model
    input's (name, shape), or None to skip the shape check."""
    p = Path(os.fspath(path))
    if not p.exists():
        return [f"{field}: {p} does not exist"]
    if not p.is_file():
        return [f"{field}: {p} is not a file"]
    try:
        with open(p, "rb") as f:
            magic = f.read(6)
    except OSError as err:
        return [f"{field}: {p} cannot be read ({err.strerror or err})"]
    if magic.startswith(b"PK"):
        return [f"{field}: {p} is a .npz archive; save one array of inputs with np.save (.npy)"]
    if magic != b"\x93NUMPY":
        return [f"{field}: {p} is not a .npy file (np.save format)"]
    try:
        arr = np.load(p, allow_pickle=False)
    except ValueError as err:
        if "allow_pickle" in str(err):
            return [f"{field}: {p} holds Python objects (a pickled array); save a numeric array with np.save"]
        return [f"{field}: {p} is not a .npy file (np.save format): {err}"]
    except (OSError, EOFError) as err:
        return [f"{field}: {p} cannot be read as a .npy file: {err}"]
    if arr.dtype.kind not in "fiu":
        return [f"{field}: {p} has dtype {arr.dtype}; sample inputs must be a float or integer array"]
    problems = []
    if shape_info is not None:
        name, shape = shape_info
        expected = "(N, " + ", ".join(map(str, shape[1:])) + ")"
        if arr.ndim != len(shape) or tuple(arr.shape[1:]) != tuple(shape[1:]):
            hint = "; add a batch axis (x[None])" if tuple(arr.shape) == tuple(shape[1:]) else ""
            problems.append(f"{field}: {p} has shape {tuple(arr.shape)}, expected {expected}: N inputs of the "
                            f"model input {name!r} of shape {tuple(shape)} without its batch axis{hint}")
            return problems
    if arr.ndim == 0 or arr.shape[0] == 0:
        problems.append(f"{field}: {p} holds 0 inputs (shape {tuple(arr.shape)}); give at least one")
    elif arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        problems.append(f"{field}: {p} holds NaN or inf (first at index {tuple(int(i) for i in bad)}); sample "
                        "inputs must be finite")
    return problems
