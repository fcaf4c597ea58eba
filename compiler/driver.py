"""PYNQ (Zynq) / Alveo driver generation for minifinn dataflow accelerators.

``make_driver(model, out_dir, platform)`` writes three files into ``out_dir`` (FINN: ``OUTPUT_DIR/driver``):

* ``driver.py`` -- from ``compiler/templates/pynq_driver.py``: class ``MinifinnDMAOverlay`` with finn-plus'
  ``FINNDMAOverlay`` method names (``execute``, ``throughput_test``, ``fold_input``, ``pack_input``, ...) and a
  command line like FINN's driver (``--exec_mode execute|throughput_test``, ``--bitfile``, ``--batchsize``, ...);
* ``minifinn_io.py`` -- from ``compiler/templates/minifinn_io.py``: numpy-only encode/decode/pack/unpack, importable
  without pynq, FINN, qonnx or minifinn;
* ``settings.json`` -- finn-plus' layout (``driver_information`` with ``io_shape_dict``, ``platform``,
  ``fclk_mhz``, ``driver_type``); the same ``io_shape_dict`` is embedded in ``driver.py``.

``io_shape_dict(model)`` follows finn-plus' ``get_driver_shapes``: one entry per accelerator input/output in the keys
``idt``/``odt`` (``"DataType['FLOAT<3,2,3>']"``), ``ishape_normal``, ``ishape_folded``, ``ishape_packed`` (and ``o*``),
``idma_names``/``odma_names``, plus ``num_inputs``, ``num_outputs``, ``number_of_external_weights`` and
``external_weights_input_shapes`` (FINN's keys) and minifinn's ``input_scales`` and ``external_weights``: one entry per
weight DMA of layers with weights off chip (``mem_mode = "external"``; compiler/weight_dma.py: DMA name, layer, buffer
reads per frame, file, bytes); ``make_driver`` writes each buffer's bytes to ``runtime_weights/<dma>.npy`` (FINN's
layout, ``to_external_tensor``), which the driver loads and streams in every frame. It accepts either the dataflow
model of the minifinn build (one node per layer; DMA names then are FINN's ``idma<i>``/``odma<i>``, the names
ZynqBuild gives its IODMAs: the weight DMAs first, so the input DMA is ``idma<k>`` for k weight DMAs) or the partitioned
model that FINN's ZynqBuild / VitisBuild return (IODMA partitions; names read from their ``instance_name``). Packed
shapes are those of ``finn.util.data_packing.finnpy_to_packed_bytearray`` on the format's codes as ``UINT<bits>``.
"""

import functools
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

import custom_ops  # noqa: F401  (registers minifinn's ops so getCustomOp resolves them)
from compiler.errors import MinifinnError
from compiler.finn_env import ensure_finn_offline
from compiler.weight_dma import external_weight_entries
from finn.util.data_packing import finnpy_to_packed_bytearray

TEMPLATES = Path(__file__).resolve().parent / "templates"
DRIVER_TEMPLATE = TEMPLATES / "pynq_driver.py"
IO_MODULE = TEMPLATES / "minifinn_io.py"
PLATFORMS = ("zynq-iodma", "alveo")


class DriverError(MinifinnError):
    """The model's I/O cannot be described for a driver (names the tensor and what was found)."""


def platform_for_board(board):
    """FINN's driver platform of a compiler.boards Board: ``zynq-iodma`` (vivado_zynq) or ``alveo``."""
    return "zynq-iodma" if board.shell_flow == "vivado_zynq" else "alveo"


@functools.lru_cache(maxsize=1)
def io_module():
    """The driver's numpy-only packing module (compiler/templates/minifinn_io.py), imported from its file."""
    spec = importlib.util.spec_from_file_location("minifinn_io", IO_MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stream_format(dtype, where):
    """Check that a stream datatype is one the driver packs (FLOAT<e,m,b>, INTn, UINTn); returns its bit width."""
    try:
        return io_module().Format(dtype.name).bits
    except ValueError as err:
        raise DriverError(f"{where}: {err}") from None


def _packed_shape(folded, bits):
    """Packed shape of a folded tensor of ``bits``-bit codes, as FINN computes it (pack a dummy tensor)."""
    ensure_finn_offline()
    dummy = np.zeros(folded, dtype=np.float32)
    return list(finnpy_to_packed_bytearray(dummy, DataType[f"UINT{bits}"], reverse_inner=True,
                                           reverse_endian=True).shape)


def _entry(name, dtype, normal, folded, where):
    bits = stream_format(dtype, where)
    normal, folded = [int(d) for d in normal], [int(d) for d in folded]
    if int(np.prod(normal)) != int(np.prod(folded)):
        raise DriverError(f"{where}: normal shape {normal} and folded shape {folded} hold different numbers of "
                          "elements")
    return {"name": name, "dt": f"DataType['{dtype.name}']", "normal": normal, "folded": folded,
            "packed": _packed_shape(folded, bits)}


def _is_partitioned(model):
    return len(model.graph.node) > 0 and all(n.op_type == "StreamingDataflowPartition" for n in model.graph.node)


def _dataflow_io(model):
    """(inputs, outputs) entries of a dataflow model whose nodes are the HW layers."""
    ins, outs = [], []
    for tensor in model.graph.input:
        if model.get_initializer(tensor.name) is not None:
            continue
        node = model.find_consumer(tensor.name)
        if node is None:
            raise DriverError(f"graph input {tensor.name!r} feeds no node")
        inst, ind = getCustomOp(node), list(node.input).index(tensor.name)
        where = f"input {tensor.name!r} of {node.name} ({node.op_type})"
        ins.append(_entry(tensor.name, inst.get_input_datatype(ind), model.get_tensor_shape(tensor.name),
                          inst.get_folded_input_shape(ind), where))
    for tensor in model.graph.output:
        node = model.find_producer(tensor.name)
        if node is None:
            raise DriverError(f"graph output {tensor.name!r} has no producer")
        inst, ind = getCustomOp(node), list(node.output).index(tensor.name)
        where = f"output {tensor.name!r} of {node.name} ({node.op_type})"
        outs.append(_entry(tensor.name, inst.get_output_datatype(ind), model.get_tensor_shape(tensor.name),
                           inst.get_folded_output_shape(ind), where))
    return ins, outs


def _partitioned_io(model):
    """Entries of a model partitioned around IODMAs (FINN's ZynqBuild/VitisBuild), as get_driver_shapes reads it:
    shapes and datatype from the first/last layer next to the IODMA partition (the IODMAs' own dataType is a byte
    type), DMA names from the IODMA partitions' instance_name."""
    ins, outs = [], []
    for tensor in model.graph.input:
        sdp = model.find_consumer(tensor.name)
        dma_model = ModelWrapper(getCustomOp(sdp).get_nodeattr("model"))
        if _is_weight_dma(dma_model):  # a weight buffer FINN's ExternalizeParams made a graph input
            continue
        if dma_model.graph.node[0].op_type != "IODMA_hls":
            raise DriverError(f"input {tensor.name!r}: its partition {sdp.name} does not start with an IODMA")
        succ = model.find_direct_successors(sdp)[0]
        succ_model = ModelWrapper(getCustomOp(succ).get_nodeattr("model"))
        first = succ_model.find_consumer(succ_model.graph.input[list(succ.input).index(sdp.output[0])].name)
        entry = _entry(tensor.name, getCustomOp(first).get_input_datatype(0),
                       model.get_tensor_shape(tensor.name), getCustomOp(first).get_folded_input_shape(),
                       f"input {tensor.name!r} ({first.name})")
        entry["dma"] = getCustomOp(sdp).get_nodeattr("instance_name")
        ins.append(entry)
    for tensor in model.graph.output:
        sdp = model.find_producer(tensor.name)
        dma_model = ModelWrapper(getCustomOp(sdp).get_nodeattr("model"))
        if dma_model.graph.node[-1].op_type != "IODMA_hls":
            raise DriverError(f"output {tensor.name!r}: its partition {sdp.name} does not end with an IODMA")
        pred = model.find_direct_predecessors(sdp)[0]
        pred_model = ModelWrapper(getCustomOp(pred).get_nodeattr("model"))
        last = pred_model.find_producer(pred_model.graph.output[list(pred.output).index(sdp.input[0])].name)
        entry = _entry(tensor.name, getCustomOp(last).get_output_datatype(0),
                       model.get_tensor_shape(tensor.name), getCustomOp(last).get_folded_output_shape(),
                       f"output {tensor.name!r} ({last.name})")
        entry["dma"] = getCustomOp(sdp).get_nodeattr("instance_name")
        outs.append(entry)
    return ins, outs


def _is_weight_dma(dma_model):
    first = dma_model.graph.node[0]
    return first.op_type == "IODMA_hls" and getCustomOp(first).get_nodeattr("burstMode") == "wrap"


def io_shape_dict(model, input_scales=None, weights=None):
    """FINN-style I/O description of a dataflow model (see module docstring). ``input_scales``: one host quantizer
    scale (float or None) per input, used by the driver's ``input_kind="float"``; ``weights``: the model's
    ``external_weight_entries`` when already computed."""
    ins, outs = _partitioned_io(model) if _is_partitioned(model) else _dataflow_io(model)
    weights = external_weight_entries(model) if weights is None else weights
    if not ins or not outs:
        raise DriverError(f"the model has {len(ins)} streamed input(s) and {len(outs)} output(s); a driver needs at "
                          "least one of each")
    scales = list(input_scales) if input_scales is not None else [None] * len(ins)
    if len(scales) != len(ins):
        raise DriverError(f"{len(scales)} input scale(s) given for {len(ins)} input(s)")
    return {
        "idt": [e["dt"] for e in ins], "odt": [e["dt"] for e in outs],
        "ishape_normal": [e["normal"] for e in ins], "oshape_normal": [e["normal"] for e in outs],
        "ishape_folded": [e["folded"] for e in ins], "oshape_folded": [e["folded"] for e in outs],
        "ishape_packed": [e["packed"] for e in ins], "oshape_packed": [e["packed"] for e in outs],
        "idma_names": [e.get("dma", f"idma{len(weights) + i}") for i, e in enumerate(ins)],
        "odma_names": [e.get("dma", f"odma{i}") for i, e in enumerate(outs)],
        "input_names": [e["name"] for e in ins], "output_names": [e["name"] for e in outs],
        "num_inputs": len(ins), "num_outputs": len(outs),
        "number_of_external_weights": len(weights),
        "external_weights_input_shapes": {w["dma"]: [w["bytes"]] for w in weights},
        "external_weights": [{k: v for k, v in w.items() if k != "data"} for w in weights],
        "input_scales": [None if s is None else float(s) for s in scales],
    }


def host_input_scales(parent, dataflow_inputs):
    """Scale of the host quantizer feeding each dataflow input in the parent model (``QuantizeToFormat`` with a
    single-valued scale initializer), or None where the producer is something else."""
    if not isinstance(parent, ModelWrapper):
        parent = ModelWrapper(str(parent))
    sdp = parent.get_nodes_by_op_type("StreamingDataflowPartition")
    if len(sdp) != 1:
        return [None] * len(dataflow_inputs)
    scales = []
    for i, _ in enumerate(dataflow_inputs):
        tensor = sdp[0].input[i] if i < len(sdp[0].input) else None
        node = parent.find_producer(tensor) if tensor else None
        scale = parent.get_initializer(node.input[1]) if node is not None and node.op_type == "QuantizeToFormat" \
            and len(node.input) > 1 else None
        scales.append(float(np.asarray(scale).ravel()[0]) if scale is not None and np.asarray(scale).size == 1
                      else None)
    return scales


def make_driver(model, out_dir, platform, clk_period_ns=None, input_scales=None, model_name="model"):
    """Write driver.py, minifinn_io.py, settings.json and the external weights (``runtime_weights/``) into
    ``out_dir`` (created); returns its Path."""
    if platform not in PLATFORMS:
        raise DriverError(f"driver platform must be one of {PLATFORMS}, got {platform!r}")
    weights = external_weight_entries(model)
    shapes = io_shape_dict(model, input_scales, weights)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "runtime_weights").is_dir():
        shutil.rmtree(out / "runtime_weights")
    for w in weights:
        (out / w["file"]).parent.mkdir(exist_ok=True)
        np.save(out / w["file"], w["data"])
    fclk = None if clk_period_ns is None else 1000.0 / float(clk_period_ns)
    text = DRIVER_TEMPLATE.read_text()
    for key, value in (("$IO_SHAPE_DICT$", json.dumps(shapes, indent=1)), ("$PLATFORM$", platform),
                       ("$FCLK_MHZ$", json.dumps(fclk)), ("$MODEL_NAME$", model_name)):
        if key not in text:
            raise DriverError(f"{DRIVER_TEMPLATE} lacks the placeholder {key}")
        text = text.replace(key, value)
    (out / "driver.py").write_text(text)
    shutil.copyfile(IO_MODULE, out / "minifinn_io.py")
    settings = {"driver_information": {"driver_type": "MinifinnDMAOverlay", "io_shape_dict": shapes,
                                       "platform": platform, "fclk_mhz": fclk, "external_weights": bool(weights),
                                       "runtime_weights": False},
                "experiment_information": {}}
    (out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    return out
