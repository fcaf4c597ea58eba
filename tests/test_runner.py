"""Config round-trips and the step runner: intermediate models, times, resume, errors."""

import json
from pathlib import Path

import pytest
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper

from compiler.build_dir import BuildDirError, save_model_atomic
from compiler.config import BuildConfig, ConfigError
from compiler.runner import BuildError, InvalidBuild, run_build


def _tiny_model():
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    node = helper.make_node("Relu", ["x"], ["y"], name="relu0")
    return ModelWrapper(helper.make_model(helper.make_graph([node], "g", [inp], [out])))


def _tag(value):
    def step(model, cfg):
        model.set_metadata_prop("trail", (model.get_metadata_prop("trail") or "") + value)
        return model

    step.__name__ = f"step_{value}"
    return step


def test_config_roundtrip_json_yaml(tmp_path):
    cfg = BuildConfig(output_dir=str(tmp_path), board="pynq-z2", target_fps=1000, fifo_sizing="none")
    assert cfg.board == "Pynq-Z2" and cfg.fpga_part == "xc7z020clg400-1" and cfg.shell_flow_type == "vivado_zynq"
    for name in ("c.json", "c.yaml"):
        path = cfg.save(tmp_path / name)
        assert BuildConfig.load(path) == cfg


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown board"):
        BuildConfig(board="NoSuchBoard")
    with pytest.raises(ConfigError, match="target_fps must be > 0"):
        BuildConfig(target_fps=-3)
    with pytest.raises(ConfigError, match="fifo_sizing 'deep' is not one of"):
        BuildConfig(fifo_sizing="deep")
    with pytest.raises(ConfigError, match=r"unknown config field\(s\) \['weights'\]"):  # formats come from the model
        BuildConfig.from_dict({"weights": "fp:e3m2"})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"outptu_dir": "x"}))
    with pytest.raises(ConfigError, match="unknown config field.*outptu_dir"):
        BuildConfig.load(bad)
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        BuildConfig.load(bad)


def test_runner_saves_intermediates_times_and_resumes(tmp_path):
    cfg = BuildConfig(output_dir=str(tmp_path))
    steps = [_tag("a"), _tag("b"), _tag("c")]
    model = run_build(_tiny_model(), cfg, steps=steps, progress=False)
    assert model.get_metadata_prop("trail") == "abc"
    times = json.loads((tmp_path / "time_per_step.json").read_text())
    assert list(times) == ["step_a", "step_b", "step_c"]
    for name in times:
        assert (tmp_path / "intermediate_models" / f"{name}.onnx").is_file()
    assert "done [3/3] step_c" in (tmp_path / "build.log").read_text()
    # resume at step_c from step_b's saved model: the trail continues from "ab"
    cfg.start_step = "step_c"
    assert run_build(None, cfg, steps=steps, progress=False).get_metadata_prop("trail") == "abc"
    cfg.start_step, cfg.stop_step = None, "step_b"
    assert run_build(_tiny_model(), cfg, steps=steps, progress=False).get_metadata_prop("trail") == "ab"


def test_runner_errors_name_the_step(tmp_path):
    cfg = BuildConfig(output_dir=str(tmp_path))

    def step_boom(model, cfg):
        raise RuntimeError("kaputt")

    with pytest.raises(BuildError, match="step step_boom failed with RuntimeError: kaputt"):
        run_build(_tiny_model(), cfg, steps=[_tag("a"), step_boom], progress=False)
    assert "kaputt" in (tmp_path / "build.log").read_text()
    with pytest.raises(BuildError, match="unknown build step"):
        run_build(_tiny_model(), cfg, steps=["no_such_step"], progress=False)
    with pytest.raises(BuildError, match="does not exist"):
        run_build(tmp_path / "missing.onnx", cfg, steps=[_tag("a")], progress=False)
    cfg.start_step = "step_b"
    with pytest.raises(BuildError, match="cannot resume"):
        run_build(None, BuildConfig(output_dir=str(tmp_path / "fresh"), start_step="step_b"),
                  steps=[_tag("a"), _tag("b")], progress=False)


def _writer(name, files):
    """A step that writes ``files`` (relative paths) under the output folder."""
    def step(model, cfg):
        for rel in files:
            path = Path(cfg.output_dir) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(name)
        return model

    step.__name__ = name
    return step


def test_resume_removes_the_outputs_of_the_steps_it_reruns(tmp_path):
    cfg = BuildConfig(output_dir=str(tmp_path))
    run_build(_tiny_model(), cfg, progress=False,
              steps=[_writer("step_a", ["report/a.txt"]), _writer("step_b", ["report/b.txt", "extra/b.txt"])])
    manifest = json.loads((tmp_path / "build_manifest.json").read_text())
    outputs = {r["step"]: r["outputs"] for r in manifest["records"]}
    assert outputs["step_a"] == ["intermediate_models/step_a.onnx", "report", "report/a.txt"]
    assert outputs["step_b"] == ["extra", "extra/b.txt", "intermediate_models/step_b.onnx", "report/b.txt"]
    # resume at step_b with a step_b that writes nothing: its earlier outputs do not stay behind, step_a's do
    cfg.start_step = "step_b"
    run_build(None, cfg, progress=False, steps=[_writer("step_a", ["report/a.txt"]), _writer("step_b", [])])
    assert (tmp_path / "report" / "a.txt").is_file() and not (tmp_path / "report" / "b.txt").exists()
    assert not (tmp_path / "extra").exists() and (tmp_path / "intermediate_models" / "step_b.onnx").is_file()
    # a rerun from the first step removes every earlier output first
    cfg.start_step = None
    run_build(_tiny_model(), cfg, progress=False, steps=[_writer("step_a", ["other.txt"])])
    assert not (tmp_path / "report").exists() and (tmp_path / "other.txt").is_file()
    assert list(json.loads((tmp_path / "time_per_step.json").read_text())) == ["step_a"]


def test_another_model_is_refused_or_replaced_with_force(tmp_path):
    cfg = BuildConfig(output_dir=str(tmp_path))
    run_build(_tiny_model(), cfg, progress=False, steps=[_writer("step_a", ["a.txt"])])
    other = _tiny_model()
    other.graph.node[0].name = "renamed"
    (tmp_path / "mine.txt").write_text("not an output")
    with pytest.raises(BuildDirError, match="holds another build: it was built from another model"):
        run_build(other, cfg, progress=False, steps=[_writer("step_a", ["b.txt"])])
    assert (tmp_path / "a.txt").is_file()
    run_build(other, cfg, progress=False, steps=[_writer("step_a", ["b.txt"])], force=True)
    assert not (tmp_path / "a.txt").exists() and (tmp_path / "b.txt").is_file()
    assert (tmp_path / "mine.txt").is_file()  # not recorded as an output: kept


def test_checks_happen_before_anything_is_written(tmp_path):
    cfg = BuildConfig(output_dir=str(tmp_path / "out"), stop_step="step_nope")
    with pytest.raises(InvalidBuild) as info:
        run_build(tmp_path / "missing.onnx", cfg, progress=False, steps=[_tag("a")])
    assert info.value.problems == ["stop_step 'step_nope' is not among the steps: step_a",
                                   f"model file {tmp_path / 'missing.onnx'} does not exist"]
    assert not (tmp_path / "out").exists()


def test_atomic_save_keeps_the_previous_file_when_a_write_fails(tmp_path):
    path = tmp_path / "m.onnx"
    good = _tiny_model()
    save_model_atomic(good, path)
    before = path.read_bytes()

    class Broken:
        def save(self, name):
            Path(name).write_bytes(b"half")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_model_atomic(Broken(), path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
