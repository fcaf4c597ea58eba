"""Driver generation (compiler/driver.py) and its numpy-only packing module (compiler/templates/minifinn_io.py):
formats and packing against compiler.numerics, FINN's packer and the hardware ops' own stream packing; the generated
driver imports without pynq."""

import json
import subprocess
import sys

import numpy as np
import pytest
from qonnx.core.datatype import DataType
from qonnx.custom_op.registry import getCustomOp

import custom_ops  # noqa: F401
from compiler.driver import DriverError, io_module, io_shape_dict, make_driver
from compiler.finn_env import ensure_finn_offline
from compiler.numerics import IntFormat, MinifloatFormat
from custom_ops.codegen import codes_of, pack_words
from custom_ops.examples import random_dynamic_mvau_model, random_mvau_model

io = io_module()
MINIFLOATS = [MinifloatFormat(e, bits - 1 - e) for bits in range(3, 9) for e in range(1, bits - 1)]
INTS = [IntFormat(b) for b in (2, 4, 8)] + [IntFormat(b, signed=False) for b in (3, 5, 8)]
FOLDED = [(1, 4, 3), (2, 5, 2, 7), (3, 1, 16)]


def _finn_pack(array, dtype):
    ensure_finn_offline()
    from finn.util.data_packing import finnpy_to_packed_bytearray

    return finnpy_to_packed_bytearray(np.asarray(array, dtype=np.float32), dtype, reverse_inner=True,
                                      reverse_endian=True)


@pytest.mark.parametrize("fmt", MINIFLOATS + INTS, ids=lambda f: f.name)
def test_codes_and_packing_round_trip_every_format(fmt):
    rng = np.random.default_rng(fmt.bits * 7 + fmt.lsb_exponent)
    driver_fmt = io.Format(fmt.qonnx_name if fmt.is_minifloat else fmt.datatype.name)
    assert driver_fmt.bits == fmt.bits
    for shape in FOLDED:
        values = fmt.values()[rng.integers(0, len(fmt.values()), size=shape)]
        codes = driver_fmt.encode(values)
        assert np.array_equal(codes, fmt.encode(values).astype(np.uint64))  # compiler.numerics' codes
        packed = io.pack(codes, fmt.bits)
        assert packed.shape == shape[:-1] + ((shape[-1] * fmt.bits + 7) // 8,)
        # FINN's packer on the codes as UINT<bits>; for integer formats also on the values as INTn/UINTn
        assert np.array_equal(packed, _finn_pack(codes, DataType[f"UINT{fmt.bits}"]))
        if not fmt.is_minifloat:
            assert np.array_equal(packed, _finn_pack(values, fmt.datatype))
        back = io.unpack(packed, fmt.bits, shape[-1])
        assert np.array_equal(back, codes)
        assert np.array_equal(driver_fmt.decode(back), values)


@pytest.mark.parametrize("bits", [17, 31, 45, 62])
def test_wide_accumulator_codes_round_trip_exactly(bits):
    """Accumulator outputs (noActivation) are INTn wider than float32's mantissa; packing stays exact."""
    fmt = io.Format(f"INT{bits}")
    rng = np.random.default_rng(bits)
    values = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), size=(2, 3, 5), dtype=np.int64)
    values[0, 0, :2] = [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1]
    codes = fmt.encode(values)
    words = pack_words(codes.astype(object), bits)  # the hardware testbenches' packing (Python ints)
    packed = io.pack(codes, bits)
    assert [int.from_bytes(bytes(w), "little") for w in packed.reshape(-1, packed.shape[-1])] == words
    assert np.array_equal(fmt.decode(io.unpack(packed, bits, 5)), values)


@pytest.mark.parametrize("fmt", [MinifloatFormat(3, 2), MinifloatFormat(4, 3), MinifloatFormat(2, 1),
                                 MinifloatFormat(3, 2, 5), IntFormat(4), IntFormat(6, signed=False)],
                         ids=lambda f: f.name)
def test_float_input_quantizes_like_numerics_including_ties(fmt):
    vals = np.unique(fmt.values())
    ties = (vals[:-1] + vals[1:]) / 2  # exactly between two neighbours: round half to even
    rng = np.random.default_rng(1)
    x = np.concatenate([ties, rng.normal(scale=fmt.max, size=300), [fmt.max * 3, -fmt.max * 3, 0.0, -0.0]])
    x = x.astype(np.float32)
    driver_fmt = io.Format(fmt.qonnx_name if fmt.is_minifloat else fmt.datatype.name)
    assert np.array_equal(driver_fmt.quantize(x), fmt.quantize(x))
    shapes = {"idt": [f"DataType['{driver_fmt.name}']"], "odt": ["DataType['INT8']"], "ishape_normal": [[1, x.size]],
              "ishape_folded": [[1, x.size, 1]], "ishape_packed": [[1, x.size, 1]], "oshape_normal": [[1, 1]],
              "oshape_folded": [[1, 1, 1]], "oshape_packed": [[1, 1, 1]], "input_scales": [0.25]}
    host = io.MinifinnIO(shapes)
    codes = host.encode_input(x[None], input_kind="float")  # the recorded host scale 0.25
    assert np.array_equal(codes, fmt.encode(fmt.quantize(x / np.float32(0.25)))[None].astype(np.uint64))
    assert np.array_equal(host.encode_input(x[None], input_kind="float", scale=2.0),
                          fmt.encode(fmt.quantize(x / np.float32(2.0)))[None].astype(np.uint64))


def test_values_that_are_not_in_the_format_are_rejected():
    f = io.Format("FLOAT<3,2,3>")
    with pytest.raises(ValueError, match="0.3 is not a value of FLOAT<3,2,3>"):
        f.encode(np.array([0.5, 0.3]))
    with pytest.raises(ValueError, match="not a value of INT4"):
        io.Format("INT4").encode(np.array([8.0]))
    with pytest.raises(ValueError, match="BIPOLAR.*not FLOAT<e,m,b>, INTn or UINTn"):
        io.Format("BIPOLAR")
    with pytest.raises(ValueError, match="do not fit in 3 bits"):
        io.pack(np.array([[8]]), 3)


def _load_driver(ddir, script):
    """Run ``script`` in a fresh interpreter where ``import pynq`` fails, with the generated driver imported."""
    code = f"import sys; sys.modules['pynq'] = None; sys.path.insert(0, {str(ddir)!r}); import driver\n" + script
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("no_act", [0, 1])
def test_driver_for_an_mvau_graph_matches_the_hardware_streams(tmp_path, no_act):
    fa, fw, fo = MinifloatFormat(3, 2), IntFormat(4), MinifloatFormat(2, 3)
    mw, mh, pe, simd, n_vec = 12, 6, 3, 4, 2
    model, x = random_mvau_model(fa, fw, fo, mw, mh, pe, simd, no_act, n_vec=n_vec, seed=3)
    inst = getCustomOp(model.graph.node[0])
    odt = inst.get_output_datatype()
    ddir = make_driver(model, tmp_path / "driver", "zynq-iodma", clk_period_ns=5.0)
    settings = json.loads((ddir / "settings.json").read_text())["driver_information"]
    shapes = settings["io_shape_dict"]
    assert settings["platform"] == "zynq-iodma" and settings["fclk_mhz"] == 200.0
    assert shapes["idt"] == ["DataType['FLOAT<3,2,3>']"] and shapes["odt"] == [f"DataType['{odt.name}']"]
    assert shapes["ishape_normal"] == [[n_vec, mw]] and shapes["oshape_normal"] == [[n_vec, mh]]
    assert shapes["ishape_folded"] == [[n_vec, mw // simd, simd]]
    assert shapes["oshape_folded"] == [[n_vec, mh // pe, pe]]
    assert shapes["ishape_packed"] == [[n_vec, mw // simd, (simd * 6 + 7) // 8]]
    assert shapes["oshape_packed"] == [[n_vec, mh // pe, (pe * odt.bitwidth() + 7) // 8]]
    assert shapes["idma_names"] == ["idma0"] and shapes["odma_names"] == ["odma0"] and shapes["num_inputs"] == 1
    assert (ddir / "minifinn_io.py").read_text() == io.__loader__.get_data(io.__file__).decode()

    # the driver's input bytes are the words the layer's stream carries (the op's own packing, used by rtlsim)
    host = io.MinifinnIO(shapes, batch_size=n_vec)
    packed = host.prepare_input(x)
    words = pack_words(codes_of(x.reshape(n_vec, mw // simd, simd), fa), fa.bits)
    assert [int.from_bytes(bytes(w), "little") for w in packed.reshape(-1, packed.shape[-1])] == words
    # output words as the hardware emits them -> driver -> the op's Python (golden) output
    ctx = {"x": x, "W": model.get_initializer("W"), "y": np.zeros((n_vec, mh), dtype=np.float32)}
    if not no_act:
        ctx["T"] = model.get_initializer("T")
    inst.execute_node(ctx, model.graph)
    golden = ctx["y"]
    out_fmt = inst.output_format()
    out_words = pack_words(codes_of(golden.reshape(n_vec, mh // pe, pe), out_fmt), out_fmt.bits)
    nbytes = shapes["oshape_packed"][0][-1]
    hw_bytes = np.array([list(w.to_bytes(nbytes, "little")) for w in out_words], dtype=np.uint8)
    result = host.finish_output(hw_bytes.reshape(n_vec, mh // pe, nbytes))
    assert result.shape == (n_vec, mh) and np.array_equal(result.astype(np.float64), golden.astype(np.float64))

    # the generated driver.py imports without pynq, exposes FINN's method names and refuses to open an overlay
    np.save(tmp_path / "x.npy", x)
    run = _load_driver(ddir, (
        "import numpy as np\n"
        "io = driver.MinifinnIO(driver.IO_SHAPE_DICT, batch_size=2)\n"
        f"np.save({str(tmp_path / 'p.npy')!r}, io.prepare_input(np.load({str(tmp_path / 'x.npy')!r})))\n"
        "assert all(hasattr(driver.MinifinnDMAOverlay, m) for m in ('execute', 'throughput_test', 'fold_input', "
        "'pack_input', 'unpack_output', 'unfold_output', 'execute_on_buffers', 'copy_input_data_to_device'))\n"
        "print(driver.PLATFORM, driver.FCLK_MHZ)\n"
        "driver.MinifinnDMAOverlay('accel.bit')\n"))
    assert "zynq-iodma 200.0" in run.stdout
    assert "RuntimeError: pynq is not installed" in run.stderr
    assert np.array_equal(np.load(tmp_path / "p.npy"), packed)


def test_driver_for_two_stream_inputs(tmp_path):
    """Dynamic (activation x activation) MVAU: two accelerator inputs, the matrix in FINN's dynamic-MVAU order."""
    f = MinifloatFormat(3, 2)
    model, x, w = random_dynamic_mvau_model(f, f, f, [2], 3, 8, 4, 2, 2, 0)
    shapes = io_shape_dict(model)
    inst = getCustomOp(model.graph.node[0])
    assert shapes["num_inputs"] == 2 and shapes["idma_names"] == ["idma0", "idma1"]
    assert shapes["ishape_folded"][1] == [int(d) for d in inst.get_folded_input_shape(1)]
    host = io.MinifinnIO(shapes, batch_size=2)
    packed_w = host.prepare_input(w, ind=1)
    words = inst.dynamic_matrix_words(w)
    assert [int.from_bytes(bytes(r), "little") for r in packed_w.reshape(-1, packed_w.shape[-1])] == list(words)


def test_shapes_and_errors(tmp_path):
    model, _ = random_mvau_model(MinifloatFormat(3, 2), IntFormat(4), MinifloatFormat(3, 2), 8, 4, 2, 2, 0)
    with pytest.raises(DriverError, match="platform must be one of"):
        make_driver(model, tmp_path, "pcie")
    with pytest.raises(DriverError, match="2 input scale"):
        io_shape_dict(model, input_scales=[1.0, 2.0])
    host = io.MinifinnIO(io_shape_dict(model))
    with pytest.raises(ValueError, match=r"expected shape \(2, 8\)"):
        host.fold_input(np.zeros((2, 6)))


def _zynq_partitioned(model):
    """The partition structure FINN's ZynqBuild gives a dataflow model (IODMA partitions around the layers), with
    the instance names its MakeZYNQProject assigns; built offline."""
    from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames

    from finn.transformation.fpgadataflow.create_dataflow_partition import CreateDataflowPartition
    from finn.transformation.fpgadataflow.floorplan import Floorplan
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_iodma import InsertIODMA
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    part = "xc7z020clg400-1"
    getCustomOp(model.graph.node[0]).set_nodeattr("preferred_impl_style", "rtl")
    model = model.transform(SpecializeLayers(part))
    model.set_tensor_datatype("y", getCustomOp(model.graph.node[0]).get_output_datatype())
    plain = model
    for t in (InsertIODMA(64), InsertDWC(), SpecializeLayers(part), Floorplan(), CreateDataflowPartition()):
        model = model.transform(t).transform(GiveUniqueNodeNames()).transform(GiveReadableTensorNames())
    assert [n.op_type for n in model.graph.node] == ["StreamingDataflowPartition"] * 3
    getCustomOp(model.graph.node[0]).set_nodeattr("instance_name", "idma0")
    getCustomOp(model.graph.node[-1]).set_nodeattr("instance_name", "odma0")
    return plain, model


def test_partitioned_model_shapes_match_finns_get_driver_shapes():
    ensure_finn_offline()
    from finn.util.basic import get_driver_shapes

    i4 = IntFormat(4)
    _, parent = _zynq_partitioned(random_mvau_model(i4, i4, i4, 16, 8, 2, 4, 0)[0])
    finn, mine = get_driver_shapes(parent), io_shape_dict(parent)
    for key, value in finn.items():
        assert mine[key] == [list(v) if isinstance(v, tuple) else v for v in value], key
    # minifloat streams (FINN's get_driver_shapes cannot pack them): same description as the unpartitioned model
    f = MinifloatFormat(3, 2)
    plain, parent = _zynq_partitioned(random_mvau_model(f, IntFormat(4), f, 16, 8, 2, 4, 0)[0])
    a, b = io_shape_dict(plain), io_shape_dict(parent)
    assert {k: v for k, v in a.items() if a[k] != b[k]}.keys() == {"input_names", "output_names"}
