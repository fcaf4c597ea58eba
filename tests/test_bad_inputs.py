"""The bad-input corpus (issue 19): ``minifinn build``, ``minifinn formats``, the flows' flags and the numerics API
against bad models, graphs, configs, flags, output folders and verification inputs.

Every case asserts the exit code (or exception type), that the message names the culprit, that no traceback reaches
the terminal, and -- where it reruns into the folder of a good build -- that the good build's files are untouched.
The command line runs in-process (``compiler.cli.main`` with captured streams); the signal cases run it as a
process. One good build of a tiny MLP (random verification inputs) serves every rerun.
"""

import copy
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from build_flows import mlp, vit_tiny
from compiler.cli import main as cli_main
from compiler.config import FIELD_RULES, BuildConfig
from compiler.errors import FormatError
from compiler.finn_env import finn_build_dir_at
from compiler.numerics import IntFormat, MinifloatFormat
from compiler.steps import DEFAULT_STEPS

REPO = Path(__file__).resolve().parent.parent


# --- fixtures and helpers -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny exported MLP (input 1x1x8x8), sample inputs and a second, different model."""
    from test_build_steps import _qonnx

    d = tmp_path_factory.mktemp("bad_inputs")
    _qonnx(d)  # d / "mlp.onnx"
    other = d / "other"
    other.mkdir()
    _qonnx(other, spec="int:4")  # other / "mlp.onnx": another model of the same shape
    np.save(d / "x.npy", np.random.default_rng(0).normal(size=(2, 1, 8, 8)).astype(np.float32))
    return d


@pytest.fixture(scope="module")
def good(work):
    """A complete good build (every default step) with random verification inputs."""
    out = work / "good"
    assert cli_main(["build", str(work / "mlp.onnx"), "--output-dir", str(out), "--verify-random", "2"]) == 0
    assert json.loads((out / "report" / "verification.json").read_text())["passed"]
    return out


def _digest(folder):
    """{relative path: sha256} of every file under ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def _cli(capsys, *args):
    """(exit code, stdout, stderr) of ``minifinn ARGS``; no traceback on either stream."""
    try:
        rc = cli_main([str(a) for a in args])
    except SystemExit as exit_:  # argparse errors
        rc = exit_.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out and "Traceback" not in err
    return rc, out, err


def _fails(capsys, expected, *args, folder=None):
    """Run ``minifinn ARGS``, expect exit code 2 and every string of ``expected`` in stderr; ``folder`` unchanged."""
    before = _digest(folder) if folder else None
    rc, out, err = _cli(capsys, *args)
    assert rc == 2, (out, err)
    for text in expected:
        assert text in err, (text, err)
    if folder:
        assert _digest(folder) == before, "a failing run changed the good build"
    return err


def _mutated(work, name, mutate):
    """work/bad/<name>.onnx: the MLP's ModelProto changed by ``mutate(proto)``."""
    proto = copy.deepcopy(onnx.load(str(work / "mlp.onnx")))
    mutate(proto)
    path = work / "bad" / f"{name}.onnx"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(proto.SerializeToString())
    return path


def _set_init(name, change):
    def mutate(proto):
        for i, init in enumerate(proto.graph.initializer):
            if init.name == name:
                arr = numpy_helper.to_array(init).copy()
                change(arr)
                proto.graph.initializer[i].CopyFrom(numpy_helper.from_array(arr, name))
                return
        raise KeyError(name)
    return mutate


def _node(proto, name):
    return next(n for n in proto.graph.node if n.name == name)


def _in_dims(proto):
    return proto.graph.input[0].type.tensor_type.shape.dim


def _sym_batch(p):
    _in_dims(p)[0].dim_param = "N"  # replaces dim_value (oneof)


def _several(p):
    _sym_batch(p)
    _set_init("FloatQuant_0_param0", lambda a: a.__setitem__((0, 0), np.nan))(p)
    _node(p, "MatMul_0").name = "MatMul_1"


def _empty_graph(p):
    del p.graph.node[:]
    del p.graph.initializer[:]


def _set_nan(a):
    a[0, 0] = np.nan


def _set_inf(a):
    a[3] = np.inf


def _set_zero(a):
    a[...] = 0


def _set_subnormal(a):
    a[...] = 1e-45


def _set_negative(a):
    a[0, 3] = -0.5


def _set_negative_variance(a):
    a[2] = -1.0


# --- 1. the graph (21 cases) ---------------------------------------------------------------------------------------
GRAPHS = {
    "symbolic_batch": (_sym_batch, ["'global_in'", "symbolic dimension 'N' at axis 0", "batch 1"]),
    "no_input_shape": (lambda p: p.graph.input[0].type.tensor_type.ClearField("shape"), ["'global_in'", "no shape"]),
    "zero_dim": (lambda p: setattr(_in_dims(p)[2], "dim_value", 0), ["'global_in'", "empty dimension (0) at axis 2"]),
    "batch_two": (lambda p: setattr(_in_dims(p)[0], "dim_value", 2), ["'global_in'", "batch size 2"]),
    "int_input": (lambda p: setattr(p.graph.input[0].type.tensor_type, "elem_type", TensorProto.INT64),
                  ["'global_in'", "INT64"]),
    "duplicated_output": (lambda p: p.graph.output.append(copy.deepcopy(p.graph.output[0])),
                          ["graph output 'global_out' is listed 2 times"]),
    "two_outputs": (lambda p: p.graph.output.append(helper.make_tensor_value_info("Relu_1_out0", 1, [1, 16])),
                    ["2 outputs", "'Relu_1_out0'"]),
    "two_inputs": (lambda p: p.graph.input.append(helper.make_tensor_value_info("extra_in", 1, [1, 4])),
                   ["2 inputs", "'extra_in'"]),
    "duplicate_node_name": (lambda p: setattr(_node(p, "MatMul_0"), "name", "MatMul_1"),
                            ["node name 'MatMul_1' is used by 2 nodes"]),
    "tensor_produced_twice": (lambda p: _node(p, "Relu_0").output.__setitem__(0, "BatchNormalization_1_out0"),
                              ["'BatchNormalization_1_out0' is produced twice", "Relu_0"]),
    "undefined_input": (lambda p: _node(p, "MatMul_1").input.__setitem__(0, "nowhere"),
                        ["'MatMul_1' (MatMul) reads tensor 'nowhere'"]),
    "cycle": (lambda p: _node(p, "Flatten_0").input.__setitem__(0, "global_out"), ["cycle", "'Flatten_0'"]),
    "output_not_produced": (lambda p: setattr(p.graph.output[0], "name", "ghost"),
                            ["graph output 'ghost' is not produced"]),
    "nan_weight": (_set_init("FloatQuant_0_param0", _set_nan),
                   ["initializer 'FloatQuant_0_param0'", "'FloatQuant_0'", "NaN"]),
    "inf_bias": (_set_init("Gemm_0_param0", _set_inf), ["initializer 'Gemm_0_param0'", "'Gemm_0'", "inf"]),
    "zero_scale": (_set_init("FloatQuant_3_param0", _set_zero), ["'FloatQuant_3'", "scale 0 is 0"]),
    "subnormal_scale": (_set_init("FloatQuant_3_param0", _set_subnormal), ["'FloatQuant_3'", "is subnormal"]),
    "negative_scale": (_set_init("FloatQuant_0_param1", _set_negative), ["'FloatQuant_0'", "index 3 is negative"]),
    "bn_negative_variance": (_set_init("BatchNormalization_1_param3", _set_negative_variance),
                             ["'BatchNormalization_1'", "variance + epsilon <= 0 in channel(s) 2"]),
    "empty_graph": (_empty_graph, ["the graph has no nodes"]),
    "several_problems": (_several, ["problems:", "symbolic dimension", "NaN", "node name 'MatMul_1'"]),
}


@pytest.mark.parametrize("case", list(GRAPHS))
def test_bad_graph_is_refused_up_front_naming_the_culprit(work, good, capsys, case):
    mutate, expected = GRAPHS[case]
    path = _mutated(work, case, mutate)
    err = _fails(capsys, [path.name, *expected], "build", path, "--output-dir", good, "--verify-input",
                 work / "x.npy", folder=good)
    assert "[1/10]" not in err  # nothing ran


# --- 2. the model file (7 cases) -------------------------------------------------------------------------------------
def _model_file(work, case):
    d = work / "files"
    d.mkdir(exist_ok=True)
    path = d / f"{case}.onnx"
    if case == "missing":
        return path, "does not exist"
    if case == "folder":
        path.mkdir(exist_ok=True)
        return path, "is a folder"
    data = {"empty": b"", "garbage": b"\x00\xffgarbage\x13\x37" * 10, "json": b'{"graph": "not onnx"}',
            "truncated": (work / "mlp.onnx").read_bytes()[:300], "npy": (work / "x.npy").read_bytes()}[case]
    path.write_bytes(data)
    return path, "is empty (0 bytes)" if case == "empty" else "not a readable ONNX model"


@pytest.mark.parametrize("case", ["missing", "folder", "empty", "garbage", "json", "truncated", "npy"])
def test_bad_model_file_is_one_clear_error(work, good, capsys, case):
    path, phrase = _model_file(work, case)
    _fails(capsys, [str(path), phrase], "build", path, "--output-dir", good, "--verify-input", work / "x.npy",
           folder=good)


# --- 3. the config (24 cases) ----------------------------------------------------------------------------------------
CONFIGS = {
    "fps_word": ("target_fps: fast\n", ["target_fps must be > 0", "'fast'"]),
    "fps_negative": ("target_fps: -5\n", ["target_fps must be > 0", "-5"]),
    "fps_nan": ("target_fps: .nan\n", ["target_fps must be > 0", "nan"]),
    "clock_zero": ("synth_clk_period_ns: 0\n", ["synth_clk_period_ns must be > 0"]),
    "clock_text": ("synth_clk_period_ns: 10ns\n", ["synth_clk_period_ns", "'10ns'"]),
    "fifo_word": ("fifo_sizing: deep\n", ["fifo_sizing 'deep' is not one of"]),
    "frames_zero": ("fifo_sizing_frames: 0\n", ["fifo_sizing_frames must be an integer >= 1"]),
    "frames_bool": ("fifo_sizing_frames: true\n", ["fifo_sizing_frames must be an integer >= 1, got True"]),
    "scale_bits": ("requant_scale_bits: 40\n", ["requant_scale_bits must be an integer in 2..32"]),
    "scale_bits_fraction": ("requant_scale_bits: 16.5\n", ["requant_scale_bits", "16.5"]),
    "requant_word": ("requant_style: fast\n", ["requant_style 'fast' is not one of"]),
    "unknown_field": ("outptu_dir: x\n", ["unknown config field(s) ['outptu_dir']", "known fields", "output_dir"]),
    "board_number": ("board: 3\n", ["board must be a non-empty string, got 3"]),
    "board_unknown": ("board: NoSuchBoard\n", ["unknown board 'NoSuchBoard'", "Pynq-Z2"]),
    "steps_string": ("steps: step_lower\n", ["steps must be a list of step names"]),
    "steps_unknown": ("steps: [step_lower, step_nope]\n", ["unknown build step 'step_nope'"]),
    "save_word": ("save_intermediate_models: maybe\n", ["save_intermediate_models must be true or false"]),
    "folding_missing": ("folding_config_file: /no/such/fold.json\n", ["folding_config_file", "does not exist"]),
    "folding_bad_json": ("folding_config_file: @BAD@\n", ["folding_config_file", "not valid JSON"]),
    "top_level_list": ("- board: Pynq-Z2\n", ["expected a mapping of config fields", "list"]),
    "bad_yaml": ("board: [unclosed\n", ["is not valid YAML"]),
    "several": ("target_fps: fast\nfifo_sizing: deep\nboard: NoSuchBoard\n",
                ["3 problems", "target_fps", "fifo_sizing 'deep'", "NoSuchBoard"]),
}


def test_every_config_field_has_a_type_and_range_rule():
    """A new BuildConfig field without a rule in FIELD_RULES would pass unchecked into the build."""
    assert {f.name for f in dataclasses.fields(BuildConfig)} == set(FIELD_RULES)


@pytest.mark.parametrize("case", list(CONFIGS))
def test_bad_config_is_refused_up_front_naming_the_field(work, good, capsys, case):
    text, expected = CONFIGS[case]
    bad_json = work / "bad_fold.json"
    bad_json.write_text("{not json")
    path = work / "configs" / f"{case}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text.replace("@BAD@", str(bad_json)))
    _fails(capsys, expected, "build", work / "mlp.onnx", "--config", path, "--output-dir", good, "--verify-input",
           work / "x.npy", folder=good)


def test_config_file_missing_and_config_problem_with_model_problem_together(work, good, capsys):
    _fails(capsys, ["config file", "nope.yaml", "does not exist"], "build", work / "mlp.onnx", "--config",
           work / "nope.yaml", "--output-dir", good, folder=good)
    # independent problems are reported together: a bad field and a missing model file
    (work / "fast.yaml").write_text("target_fps: fast\n")
    _fails(capsys, ["2 problems", "target_fps", "ghost.onnx does not exist"], "build", work / "ghost.onnx",
           "--config", work / "fast.yaml", "--output-dir", good, folder=good)


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_bad_target_fps_flag(work, good, capsys, value):
    _fails(capsys, ["target_fps must be > 0"], "build", work / "mlp.onnx", "--target-fps", value, "--output-dir",
           good, "--verify-input", work / "x.npy", folder=good)


# --- 4. the output folder (4 cases) --------------------------------------------------------------------------------
def test_empty_output_dir_is_refused(work, capsys):
    _fails(capsys, ["output_dir"], "build", work / "mlp.onnx", "--output-dir", "", "--verify-random", "1")


def test_output_dir_that_is_a_file_is_refused(work, capsys):
    afile = work / "afile"
    afile.write_text("keep me")
    _fails(capsys, [f"output_dir {afile} is a file"], "build", work / "mlp.onnx", "--output-dir", afile)
    _fails(capsys, [f"{afile} is a file"], "build", work / "mlp.onnx", "--output-dir", afile / "sub")
    assert afile.read_text() == "keep me"


@pytest.mark.skipif(os.access("/sys", os.W_OK) and not Path("/sys/kernel").is_dir(), reason="no read-only /sys")
def test_output_dir_in_a_read_only_place_is_refused(work, capsys):
    if subprocess.run(["mkdir", "/sys/minifinn_probe"], capture_output=True).returncode == 0:
        os.rmdir("/sys/minifinn_probe")
        pytest.skip("/sys is writable here")
    _fails(capsys, ["output_dir /sys/minifinn_out is not writable"], "build", work / "mlp.onnx", "--output-dir",
           "/sys/minifinn_out")


# --- 5. the verification input (13 cases) --------------------------------------------------------------------------
def _verify_file(work, case):
    d = work / "verify"
    d.mkdir(exist_ok=True)
    path = d / f"{case}.npy"
    arrays = {"wrong_shape": np.zeros((2, 64), np.float32), "no_batch_axis": np.zeros((1, 8, 8), np.float32),
              "zero_images": np.zeros((0, 1, 8, 8), np.float32), "nan": np.full((2, 1, 8, 8), np.nan, np.float32),
              "inf": np.full((2, 1, 8, 8), np.inf, np.float32), "strings": np.full((2, 1, 8, 8), "a"),
              "bools": np.ones((2, 1, 8, 8), bool), "complex": np.ones((2, 1, 8, 8), np.complex64)}
    if case in arrays:
        np.save(path, arrays[case])
    elif case == "folder":
        path.mkdir(exist_ok=True)
    elif case == "text":
        path.write_text("1 2 3\n")
    elif case == "npz":
        path = d / "inputs.npz"
        np.savez(path, x=np.zeros((2, 1, 8, 8), np.float32))
    elif case == "objects":
        np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return path


VERIFY = {
    "missing": ["does not exist"], "folder": ["is not a file"], "text": ["is not a .npy file"],
    "npz": [".npz archive"], "objects": ["holds Python objects"],
    "wrong_shape": ["has shape (2, 64), expected (N, 1, 8, 8)", "'global_in'"],
    "no_batch_axis": ["has shape (1, 8, 8), expected (N, 1, 8, 8)", "add a batch axis"],
    "zero_images": ["holds 0 inputs"], "nan": ["NaN or inf", "index (0, 0, 0, 0)"], "inf": ["NaN or inf"],
    "strings": ["dtype <U1"], "bools": ["dtype bool"], "complex": ["dtype complex64"],
}


@pytest.mark.parametrize("case", list(VERIFY))
def test_bad_verification_input_is_refused_before_any_step(work, good, capsys, case):
    path = _verify_file(work, case)
    err = _fails(capsys, ["verify_input_npy", str(path), *VERIFY[case]], "build", work / "mlp.onnx", "--output-dir",
                 good, "--verify-input", path, folder=good)
    assert "step_lower" not in err and "FIFO" not in err


@pytest.mark.parametrize("count", ["0", "-1"])
def test_bad_random_input_count(work, good, capsys, count):
    _fails(capsys, ["--verify-random must be >= 1", count], "build", work / "mlp.onnx", "--output-dir", good,
           "--verify-random", count, folder=good)


def test_verify_input_and_random_inputs_together_are_refused(work, good, capsys):
    _fails(capsys, ["not both"], "build", work / "mlp.onnx", "--output-dir", good, "--verify-random", "2",
           "--verify-input", work / "x.npy", folder=good)


def test_resume_at_a_step_that_needs_inputs_without_them(work, good, capsys):
    _fails(capsys, ["step_fifo_sizing and step_verify need sample inputs", "--verify-input"], "build",
           work / "mlp.onnx", "--output-dir", good, "--start-step", "step_fifo_sizing", folder=good)


# --- 6. steps and flags of minifinn build (4 cases) ---------------------------------------------------------------
def test_unknown_start_step_lists_the_steps(work, good, capsys):
    _fails(capsys, ["start_step 'step_nope' is not among the steps", "step_lower"], "build", work / "mlp.onnx",
           "--output-dir", good, "--start-step", "step_nope", folder=good)


def test_stop_before_start_is_refused(work, good, capsys):
    _fails(capsys, ["stop_step 'step_lower' comes before start_step 'step_folding'"], "build", work / "mlp.onnx",
           "--output-dir", good, "--start-step", "step_folding", "--stop-step", "step_lower", folder=good)


@pytest.mark.parametrize("args,expected", [(["--target-fps", "fast"], "invalid float value: 'fast'"),
                                           (["--verify-random", "two"], "invalid int value: 'two'")])
def test_unparsable_flags_are_usage_errors(work, capsys, args, expected):
    _fails(capsys, [expected, "usage: minifinn build"], "build", work / "mlp.onnx", *args)


# --- 7. minifinn formats (6 cases) ---------------------------------------------------------------------------------
def test_formats_int32_is_described_without_allocating_its_values(capsys):
    t0 = time.perf_counter()
    rc, out, _ = _cli(capsys, "formats", "int:32", "uint:32")
    assert rc == 0 and "range [-2147483648, 2147483647]" in out and "4294967296 distinct values" in out
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize("args,expected", [
    (["int:32", "--values"], ["--values: int32 has 4294967296 values", "at most 16 bits"]),
    (["e3m2", "--dot-length", "0"], ["--dot-length must be >= 1", "got 0"]),
    (["e3m2", "--dot-length", "-5"], ["--dot-length must be >= 1", "got -5"]),
    (["fp9", "int:64", "e9m9"], ["'fp9'", "'int:64': integer formats have 2..32 bits", "E9M9 has 19 bits"]),
    (["int:1"], ["'int:1'", "2..32 bits"]),
])
def test_bad_formats_and_flags(capsys, args, expected):
    err = _fails(capsys, expected, "formats", *args)
    assert err.count("minifinn formats:") == len(expected) if args[0] == "fp9" else True


# --- 8. the flows' flags (11 cases) --------------------------------------------------------------------------------
@pytest.mark.parametrize("args,expected", [
    (["--verify-images", "-1"], "--verify-images must be >= 1, got -1"),
    (["--verify-images", "0"], "--verify-images must be >= 1, got 0"),
    (["--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["--ptq", "calibrate,bogus"], "--ptq: unknown technique(s) bogus"),
    (["--weights", "fp:e9m9"], "--weights 'fp:e9m9'"),
    (["--acts", "int:99"], "--acts 'int:99'"),
    (["--first", "fp9"], "--first 'fp9'"),
    (["--target-fps", "-1"], "--target-fps must be a finite number > 0"),
    (["--target-fps", "nan"], "--target-fps must be a finite number > 0"),
    (["--output-dir", "@FILE@"], "is a file"),
])
def test_bad_flow_flags_stop_before_anything_runs(work, capsys, args, expected):
    args = [a.replace("@FILE@", str(work / "afile")) for a in args]
    (work / "afile").write_text("keep me")
    with pytest.raises(SystemExit) as exit_:
        mlp.parse_args(["--quick", *args])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and expected in err and "Traceback" not in err


def test_bad_vit_flow_counts(capsys):
    with pytest.raises(SystemExit) as exit_:
        vit_tiny.parse_args(["--quick", "--threads", "0", "--accuracy-images", "0"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--threads must be >= 1" in err and "--accuracy-images must be >= 1" in err


# --- 9. the numerics API (7 cases) ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt,scale,why", [
    (MinifloatFormat(3, 2), 0.0, "scale 0 is 0"), (IntFormat(4), 0.0, "scale 0 is 0"),
    (MinifloatFormat(3, 2), np.nan, "scale nan is not finite"), (IntFormat(4), np.inf, "scale inf is not finite"),
    (MinifloatFormat(3, 2), 1e-45, "is subnormal"), (IntFormat(4), -0.5, "is negative"),
])
def test_invalid_scales_are_errors_not_nan(fmt, scale, why):
    with pytest.raises(FormatError, match=why):
        fmt.quantize(np.array([0.0, 1.0, -1.0], np.float32), scale)


def test_minifloat_quotient_overflow_is_an_error():
    with pytest.raises(FormatError, match="x / scale overflows float32"):
        MinifloatFormat(4, 3).quantize([1.0e30], 1e-10)


# --- 10. the output folder of a build (8 cases) ---------------------------------------------------------------------
def test_another_model_into_a_build_folder_is_refused(work, good, capsys):
    _fails(capsys, ["holds another build", "another model", "--force"], "build", work / "other" / "mlp.onnx",
           "--output-dir", good, "--verify-input", work / "x.npy", folder=good)


def test_resume_with_another_model_is_refused(work, good, capsys):
    _fails(capsys, ["holds another build", "another model"], "build", work / "other" / "mlp.onnx", "--output-dir",
           good, "--start-step", "step_folding", "--verify-input", work / "x.npy", folder=good)


def test_rerun_with_another_config_is_refused_naming_the_field(work, good, capsys):
    _fails(capsys, ["another config", "target_fps: None -> 1000.0"], "build", work / "mlp.onnx", "--output-dir",
           good, "--target-fps", "1000", "--verify-input", work / "x.npy", folder=good)


def test_build_folder_without_manifest_is_refused(work, good, capsys):
    legacy = work / "legacy"
    shutil.copytree(good, legacy)
    (legacy / "build_manifest.json").unlink()
    _fails(capsys, ["no build_manifest.json", "--force"], "build", work / "mlp.onnx", "--output-dir", legacy,
           "--verify-random", "1", folder=legacy)


def test_resume_needs_the_previous_intermediate_model(work, good, capsys):
    partial = work / "partial"
    shutil.copytree(good, partial)
    (partial / "intermediate_models" / "step_folding.onnx").unlink()
    rc, _, err = _cli(capsys, "build", work / "mlp.onnx", "--output-dir", partial, "--start-step",
                      "step_estimate_reports", "--stop-step", "step_estimate_reports")
    assert rc == 2 and "cannot resume at 'step_estimate_reports'" in err and "step_folding.onnx is missing" in err


def test_resume_after_an_unfinished_step_is_refused(work, good, capsys):
    unfinished = work / "unfinished"
    shutil.copytree(good, unfinished)
    manifest = json.loads((unfinished / "build_manifest.json").read_text())
    next(r for r in manifest["records"] if r["step"] == "step_folding")["status"] = "interrupted"
    (unfinished / "build_manifest.json").write_text(json.dumps(manifest))
    _fails(capsys, ["cannot resume at 'step_estimate_reports'", "has not completed 'step_folding'"], "build",
           work / "mlp.onnx", "--output-dir", unfinished, "--start-step", "step_estimate_reports", folder=unfinished)


def test_force_replaces_another_build_and_leaves_no_stale_report(work, good, capsys):
    """--force with another model: the earlier build's outputs go (no stale verification.json); without sample
    inputs the build stops before step_fifo_sizing and says how to continue."""
    replaced = work / "replaced"
    shutil.copytree(good, replaced)
    (replaced / "notes.txt").write_text("mine")  # not a build output: stays
    rc, out, _ = _cli(capsys, "build", work / "other" / "mlp.onnx", "--output-dir", replaced, "--force")
    assert rc == 0
    assert "replacing the earlier build" in out and "stops after step_hw_codegen" in out
    assert "--start-step step_fifo_sizing" in out and "--verify-input" in out
    assert not (replaced / "report" / "verification.json").exists()
    assert not (replaced / "report" / "fifo_sizing.json").exists() and not (replaced / "driver").exists()
    assert (replaced / "notes.txt").read_text() == "mine"
    manifest = json.loads((replaced / "build_manifest.json").read_text())
    assert manifest["model"]["source"] == str(work / "other" / "mlp.onnx")
    assert [r["step"] for r in manifest["records"]] == DEFAULT_STEPS[:DEFAULT_STEPS.index("step_hw_codegen") + 1]
    times = json.loads((replaced / "time_per_step.json").read_text())
    assert list(times) == [r["step"] for r in manifest["records"]]


def test_good_build_records_its_model_config_and_outputs(work, good):
    manifest = json.loads((good / "build_manifest.json").read_text())
    assert manifest["model"]["source"] == str(work / "mlp.onnx") and manifest["config"]["board"] == "Pynq-Z2"
    records = {r["step"]: r for r in manifest["records"]}
    assert list(records) == DEFAULT_STEPS and all(r["status"] == "done" for r in records.values())
    assert "report/verification.json" in records["step_verify"]["outputs"]
    assert "intermediate_models/qonnx_input.onnx" in records["step_lower"]["outputs"]
    # generated code lives in the output folder, not in FINN_BUILD_DIR
    hw = ModelWrapper(str(good / "intermediate_models" / "step_hw_codegen.onnx"))
    for node in hw.graph.node:
        assert Path(getCustomOp(node).get_nodeattr("code_gen_dir_ipgen")).parent == (good / "finn_build").resolve()
    resume = json.loads((good / "resume_config.json").read_text())
    assert resume["output_dir"] == str(good.resolve()) and resume["steps"] == DEFAULT_STEPS


def test_resume_works_when_finn_build_dir_was_deleted(work, tmp_path, capsys):
    elsewhere = tmp_path / "finn_elsewhere"
    out = tmp_path / "out"
    with finn_build_dir_at(elsewhere):
        rc, _, _ = _cli(capsys, "build", work / "mlp.onnx", "--output-dir", out, "--stop-step", "step_hw_codegen")
        assert rc == 0
        shutil.rmtree(elsewhere)
        rc, _, err = _cli(capsys, "build", out / "intermediate_models" / "qonnx_input.onnx", "--config",
                          out / "resume_config.json", "--start-step", "step_fifo_sizing", "--stop-step",
                          "step_fifo_sizing", "--verify-input", work / "x.npy")
    assert rc == 0, err
    assert json.loads((out / "report" / "fifo_sizing.json").read_text())["sized"]


# --- 11. interrupts (2 cases) --------------------------------------------------------------------------------------
STEP_MODULE = '''
import os, subprocess
from pathlib import Path

def step_spawn(model, cfg):
    """Blocks on a grandchild process while the marker file exists."""
    marker = Path(os.environ["MINIFINN_TEST_MARKER"])
    if marker.exists():
        subprocess.run(["sh", "-c", f"sleep 120 & echo $! > {marker}.pid; wait"])
    return model
'''
SPAWN_STEPS = "steps: [step_lower, step_convert_to_hw, stepmod.step_spawn, step_create_dataflow_partition]\n"


def _spawning_build(tmp_path, monkeypatch):
    """A config whose third step blocks on a grandchild while ``marker`` exists; returns (config, marker)."""
    (tmp_path / "stepmod.py").write_text(STEP_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    marker = tmp_path / "block"
    marker.write_text("")
    monkeypatch.setenv("MINIFINN_TEST_MARKER", str(marker))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(SPAWN_STEPS)
    return cfg, marker


def _wait_for_pid(marker, alive=lambda: True):
    pid_file, deadline = Path(f"{marker}.pid"), time.time() + 120
    while not pid_file.is_file() or not pid_file.read_text().strip():
        assert alive() and time.time() < deadline
        time.sleep(0.1)
    return int(pid_file.read_text())


def _gone(pid):
    for _ in range(50):  # the grandchild is killed; init reaps it shortly after
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _check_interrupted(out, stderr, signum):
    assert "Traceback" not in stderr
    assert f"interrupted by {signal.Signals(signum).name} during stepmod.step_spawn" in stderr
    assert "stopped 2 child process(es)" in stderr  # the shell and its sleep
    record = json.loads((out / "build_manifest.json").read_text())["records"][-1]
    assert record["step"] == "stepmod.step_spawn" and record["status"] == "interrupted"
    command = stderr.split("resume with: ")[1].split()
    assert command[:2] == ["minifinn", "build"] and command[-2:] == ["--start-step", "stepmod.step_spawn"]
    return command


def test_sigterm_stops_children_prints_the_resume_command_and_resume_works(work, tmp_path, monkeypatch, capsys):
    """The build as a process: SIGTERM to it (not to its children) stops the shell and its sleep, exit code 143,
    the resume command; the command completes the build."""
    cfg, marker = _spawning_build(tmp_path, monkeypatch)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(tmp_path)]))
    proc = subprocess.Popen([sys.executable, "-m", "compiler.cli", "build", str(work / "mlp.onnx"), "--config",
                             str(cfg), "--output-dir", str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        sleeper = _wait_for_pid(marker, lambda: proc.poll() is None)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)  # no hang
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stdout and _gone(sleeper)
    command = _check_interrupted(out, stderr, signal.SIGTERM)
    marker.unlink()  # the step no longer blocks: the printed command resumes and completes the build
    rc, stdout, err = _cli(capsys, *command[1:])
    assert rc == 0, err
    assert "[3/4] stepmod.step_spawn" in stdout and "step_lower ..." not in stdout


def test_ctrl_c_stops_children_and_prints_the_resume_command(work, tmp_path, monkeypatch, capsys):
    """Ctrl-C (SIGINT to the build's process, here the test's own) while a step waits for a grandchild."""
    cfg, marker = _spawning_build(tmp_path, monkeypatch)
    out = tmp_path / "out"
    sleeper = []

    def interrupt():
        sleeper.append(_wait_for_pid(marker))
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    rc, _, err = _cli(capsys, "build", work / "mlp.onnx", "--config", cfg, "--output-dir", out)
    thread.join(10)
    assert rc == 130 and _gone(sleeper[0])
    _check_interrupted(out, err, signal.SIGINT)


# --- 12. help and README match the build (2 cases) -----------------------------------------------------------------
def test_build_help_lists_the_real_steps_in_order(capsys):
    rc, out, _ = _cli(capsys, "build", "--help")
    assert rc == 0
    positions = [out.index(f"{i + 1:2d}. {name}") for i, name in enumerate(DEFAULT_STEPS)]
    assert positions == sorted(positions)
    assert "--verify-random" in out and "--force" in out and "build_manifest.json" in out
    assert "--synth-check" in out and "step_synth_check runs after step_hw_codegen" in out


def test_readme_states_where_the_build_writes(good):
    readme = (REPO / "README.md").read_text()
    for name in ("time_per_step.json", "build.log", "build_manifest.json", "resume_config.json"):
        assert f"`OUTPUT_DIR/{name}`" in readme and (good / name).is_file()
    assert "`OUTPUT_DIR/finn_build/`" in readme and (good / "finn_build").is_dir()
    assert not (good / "intermediate_models" / "time_per_step.json").exists()
