"""Step runner: an ordered list of ``step(model, cfg) -> model`` functions, FINN-style.

``run_build`` first checks everything it is given (``prepare_build``, before any work and without writing
anything): the config's fields, the steps and ``start_step``/``stop_step``, the output folder, the model file and its
graph, the config files and the verification input (compiler/validate.py); all problems are raised together as one
``ValidationError``. Then it checks the output folder against the build recorded there (compiler/build_dir.py):
another model or config is refused unless ``force``, stale outputs of the steps about to run are removed.

For every step the runner saves ``output_dir/intermediate_models/<step>.onnx`` (atomically), records wall time in
``output_dir/time_per_step.json`` and the step's status and outputs in ``output_dir/build_manifest.json``; log
records of the whole build go to ``output_dir/build.log``, the config to resume with to
``output_dir/resume_config.json``. FINN's build directory (generated code, simulations) is
``output_dir/finn_build`` during the build, so everything a resume needs lives in the output folder.
``cfg.start_step`` resumes from the intermediate model the previous step saved; ``cfg.stop_step`` ends after the
named step. Ctrl-C and SIGTERM stop the child processes and raise ``BuildInterrupted`` with the resume command.

Steps are named (``STEPS``: the standard steps of compiler/steps.py, the optional ``step_synth_check`` of
compiler/synth_check.py and the vendor steps of compiler/vendor.py, listed explicitly), or given as any importable
function ``"package.module.function"``, or (from Python) as callables. The default list is ``DEFAULT_STEPS``
(compiler/steps.py).
"""

import copy
import importlib
import json
import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from compiler import steps as standard
from compiler import synth_check, validate, vendor
from compiler.build_dir import (
    LOG,
    RESUME_CONFIG,
    TIMES,
    BuildDir,
    config_identity,
    model_digest,
    plan_folder,
    remove_outputs,
    save_model_atomic,
    snapshot,
    write_text_atomic,
    written_between,
)
from compiler.errors import ConfigError, MinifinnError
from compiler.finn_env import finn_build_dir_at
from compiler.interrupts import Interrupted, children_stop_on_signals
from compiler.steps import DEFAULT_STEPS
from passes.convert_to_hw import MAX_LISTED_NODES

#: every named step: name -> function
STEPS = {fn.__name__: fn for fn in (
    standard.step_lower,
    standard.step_convert_to_hw,
    standard.step_create_dataflow_partition,
    standard.step_specialize_layers,
    standard.step_folding,
    standard.step_estimate_reports,
    standard.step_hw_codegen,
    synth_check.step_synth_check,
    standard.step_fifo_sizing,
    standard.step_verify,
    vendor.step_make_driver,
    vendor.step_insert_stream_plumbing,
    vendor.step_hw_ipgen,
    vendor.step_create_stitched_ip,
    vendor.step_synthesize_bitfile,
    vendor.step_deployment_package,
)}
#: file of the random verification inputs ``random_inputs`` makes, in the output folder
RANDOM_INPUTS = "verify_input_random.npy"

log = logging.getLogger("minifinn")


class BuildError(MinifinnError):
    pass


class InvalidBuild(validate.ValidationError, BuildError):
    """The problems ``prepare_build`` found (a ValidationError listing them, and a BuildError of the runner)."""


class BuildInterrupted(Interrupted):
    """Ctrl-C or SIGTERM stopped the build in ``step``; the message says how to resume (``resume_command``)."""

    def __init__(self, signum, children, step, message, resume_command):
        super().__init__(signum, children, message)
        self.step = step
        self.resume_command = resume_command


def resolve_step(step):
    """Turn a step name, dotted path or callable into ``(name, function)``."""
    if callable(step):
        return getattr(step, "step_name", step.__name__), step
    if step in STEPS:
        return step, STEPS[step]
    if isinstance(step, str) and "." in step:
        module_name, _, attr = step.rpartition(".")
        try:
            fn = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise BuildError(f"step {step!r} cannot be imported: {err}") from None
        return getattr(fn, "step_name", step), fn
    raise BuildError(f"unknown build step {step!r}; known steps: {', '.join(STEPS)}")


def select_steps(names, cfg):
    start = 0
    stop = len(names)
    if cfg.start_step is not None:
        if cfg.start_step not in names:
            raise BuildError(f"start_step {cfg.start_step!r} is not among the steps: {', '.join(names)}")
        start = names.index(cfg.start_step)
    if cfg.stop_step is not None:
        if cfg.stop_step not in names:
            raise BuildError(f"stop_step {cfg.stop_step!r} is not among the steps: {', '.join(names)}")
        stop = names.index(cfg.stop_step) + 1
    if stop <= start:
        raise BuildError(f"stop_step {cfg.stop_step!r} comes before start_step {cfg.start_step!r}")
    return start, stop


def _with_step(err, step):
    """``err`` again, its message prefixed with the step (same type, same extra attributes)."""
    new = copy.copy(err)
    new.args = (f"step {step}: {err}",) + err.args[1:]
    return new


def _step_ref(name, fn):
    """How a step is written in resume_config.json: its name, or ``module.function`` for an importable callable
    (None for one that cannot be imported by name, e.g. a function defined inside another)."""
    if name in STEPS and STEPS[name] is fn:
        return name
    qualname, module = getattr(fn, "__qualname__", ""), getattr(fn, "__module__", None)
    if module and module != "__main__" and "<" not in qualname:
        return f"{module}.{qualname}"
    return None


@dataclass
class BuildPlan:
    """What ``prepare_build`` found: the checked model (None when resuming without one), the resolved steps, the
    range to run and what to do with the output folder."""

    model: object
    model_source: str
    cfg: object
    resolved: list
    start: int
    stop: int
    bdir: BuildDir
    model_id: dict
    config_id: dict
    kept: list
    remove: list
    note: str
    random_inputs: int
    input_shape: object


def _check_model(model, problems):
    """(ModelWrapper or None, source description) for ``model``; problems appended."""
    if isinstance(model, ModelWrapper):
        wrapper, source = model, "the model"
    else:
        wrapper, found = validate.load_model(model)
        problems += found
        source = str(model)
    if wrapper is not None:
        problems += validate.graph_problems(wrapper, source)
    return wrapper, source


def prepare_build(model, cfg, steps=None, force=False, random_inputs=0):
    """Every check of ``run_build`` before any work, nothing written: returns a ``BuildPlan`` or raises an
    ``InvalidBuild`` (a ValidationError listing all problems found) or a ``BuildDirError`` (the output folder holds
    another build)."""
    problems = cfg.field_problems()
    if not problems:
        try:
            cfg.validate()
        except ConfigError as err:
            problems.append(str(err))
    wanted = list(steps if steps is not None else (cfg.steps or DEFAULT_STEPS))
    resolved = []
    for step in wanted:
        try:
            resolved.append(resolve_step(step))
        except BuildError as err:
            problems.append(str(err))
    names = [n for n, _ in resolved]
    start, stop = 0, len(names)
    if not wanted:
        problems.append("no build steps given")
    elif len(resolved) == len(wanted):
        try:
            start, stop = select_steps(names, cfg)
        except BuildError as err:
            problems.append(str(err))
    if isinstance(cfg.output_dir, str) and cfg.output_dir.strip():  # else a field problem already
        problems += validate.output_dir_problems(cfg.output_dir)
    problems += validate.config_file_problems(cfg)
    wrapper, source = None, None
    if model is not None:
        wrapper, source = _check_model(model, problems)
    elif start == 0:
        problems.append("no model given: the first step needs the QONNX model")
    shape_info = validate.input_shape(wrapper) if wrapper is not None else _resumed_input_shape(cfg)
    needing = validate.needs_sample_inputs(names[start:stop], cfg)
    if random_inputs and (not isinstance(random_inputs, int) or random_inputs < 1):
        problems.append(f"random verification inputs: the count must be an integer >= 1, got {random_inputs!r}")
    elif cfg.verify_input_npy:
        if random_inputs:
            problems.append("give verification inputs either as a file (verify_input_npy) or as random ones, not both")
        problems += validate.verify_input_problems(cfg.verify_input_npy, shape_info)
    elif needing and not random_inputs:
        problems.append(f"{' and '.join(needing)} need sample inputs of the model: give verify_input_npy "
                        f"(minifinn build --verify-input x.npy, or --verify-random N for random ones), or stop before "
                        f"{needing[0]} (stop_step)")
    if random_inputs and shape_info is None and not problems:
        problems.append("random verification inputs need the model's input shape: give the model")
    if problems:
        raise InvalidBuild(problems)
    bdir = BuildDir(cfg.output_dir)
    model_id = {"sha256": model_digest(wrapper), "source": source} if wrapper is not None else None
    config_id = config_identity(cfg)
    first, kept, remove, note = plan_folder(bdir, model_id, config_id, names, start, force)
    needing = validate.needs_sample_inputs(names[first:start], cfg)
    if needing and not (cfg.verify_input_npy or random_inputs):
        raise InvalidBuild([f"{note}: the build starts at {names[first]}, and {' and '.join(needing)} need sample "
                            "inputs: give verify_input_npy (--verify-input x.npy or --verify-random N), or stop "
                            f"before {needing[0]} (stop_step)"])
    start = first
    return BuildPlan(wrapper, source, cfg, resolved, start, stop, bdir, model_id, config_id, kept, remove, note,
                     random_inputs, shape_info)


def _resumed_input_shape(cfg):
    saved = Path(cfg.output_dir) / "intermediate_models" / "qonnx_input.onnx"
    if not saved.is_file():
        return None
    model, _ = validate.load_model(saved)
    return validate.input_shape(model) if model is not None else None


def run_build(model, cfg, steps=None, progress=True, force=False, random_inputs=0):
    """Run the build steps on ``model`` (ModelWrapper or path; None to resume from the output folder); returns the
    final model. ``force``: replace an earlier build of another model or config in the output folder.
    ``random_inputs``: that many random verification inputs (normal, seed 0) instead of ``verify_input_npy``.

    Any exception inside a step is logged with its traceback to ``build.log`` and re-raised as a ``BuildError``
    naming the step (a ``MinifinnError`` keeps its own message, which already says what to fix).
    """
    return execute(prepare_build(model, cfg, steps, force, random_inputs), progress)


def _load_intermediate(path, step):
    model, problems = validate.load_model(path)
    if model is None:
        raise BuildError(f"cannot resume at {step!r}: {'; '.join(problems)} (resume at an earlier step)")
    return model


def _write_resume_config(plan):
    cfg = plan.cfg
    data = cfg.to_dict()
    refs = [_step_ref(n, fn) for n, fn in plan.resolved]
    data.update(output_dir=str(Path(cfg.output_dir).resolve()), start_step=None, stop_step=None,
                steps=refs if None not in refs else None)
    for key in ("verify_input_npy", "folding_config_file", "specialize_layers_config_file"):
        if data.get(key):
            data[key] = str(Path(data[key]).resolve())
    write_text_atomic(Path(cfg.output_dir) / RESUME_CONFIG, json.dumps(data, indent=2) + "\n")
    return None not in refs


def resume_command(plan, step_index):
    """The shell command that resumes this build at ``step_index`` (None when a step cannot be named)."""
    out = Path(plan.cfg.output_dir).resolve()
    saved = out / "intermediate_models" / "qonnx_input.onnx"
    if step_index > 0 and saved.is_file():
        model = saved
    elif plan.model_source and Path(plan.model_source).is_file():
        model = Path(plan.model_source).resolve()
    else:
        return None
    start = f" --start-step {plan.resolved[step_index][0]}" if step_index > 0 else ""
    return f"minifinn build {model} --config {out / RESUME_CONFIG}{start}"


def execute(plan, progress=True):
    """Run a ``BuildPlan`` (``prepare_build``): clean the folder as planned, then the steps."""
    cfg, resolved, start, stop = plan.cfg, plan.resolved, plan.start, plan.stop
    out = Path(cfg.output_dir)
    names = [n for n, _ in resolved]
    inter = out / "intermediate_models"
    remove_outputs(out, plan.remove)
    inter.mkdir(parents=True, exist_ok=True)
    if plan.note and progress:
        print(f"minifinn build: {plan.note}", flush=True)
    handler = logging.FileHandler(out / LOG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    times_path = out / TIMES
    times = {}
    if start > 0 and times_path.is_file():
        try:
            times = {k: v for k, v in json.loads(times_path.read_text()).items() if k in names[:start]}
        except (ValueError, AttributeError):
            times = {}
    if plan.random_inputs:
        shape = [plan.random_inputs] + list(plan.input_shape[1][1:])
        path = out / RANDOM_INPUTS
        with open(path, "wb") as f:
            np.save(f, np.random.default_rng(0).standard_normal(shape).astype(np.float32))
        cfg.verify_input_npy = str(path)
    plan.bdir.start(plan.model_id, plan.config_id, names, plan.kept)
    resumable = _write_resume_config(plan)
    log.info("build of %s in %s: steps %s", plan.model_source or "the saved model", out, names[start:stop])
    if plan.note:
        log.info(plan.note)
    try:
        with finn_build_dir_at(out / "finn_build"), children_stop_on_signals():
            if start > 0:
                previous = inter / f"{names[start - 1]}.onnx"
                if not previous.is_file():
                    raise BuildError(
                        f"cannot resume at {names[start]!r}: {previous} is missing (run the earlier steps first)"
                    )
                model = _load_intermediate(previous, names[start])
            else:
                model = plan.model
            for index in range(start, stop):
                model = _run_step(plan, index, model, times, progress, resumable)
        return model
    finally:
        log.removeHandler(handler)
        handler.close()


def _run_step(plan, index, model, times, progress, resumable):
    cfg, (name, fn) = plan.cfg, plan.resolved[index]
    out = Path(cfg.output_dir)
    label = f"[{index + 1}/{len(plan.resolved)}] {name}"
    if progress:
        print(f"minifinn build {label} ...", flush=True)
    log.info("start %s", label)
    t0 = time.perf_counter()
    before = snapshot(out)
    status = "failed"
    try:
        model = fn(model, cfg)
        if cfg.save_intermediate_models:
            save_model_atomic(model, out / "intermediate_models" / f"{name}.onnx")
        status = "done"
    except MinifinnError as err:
        # the message once, then where it was raised (the traceback's frames without repeating it)
        log.error("step %s failed: %s\n%s", name, err, "".join(traceback.format_tb(err.__traceback__)))
        rows = getattr(err, "rows", ())
        if len(rows) > MAX_LISTED_NODES:  # fewer are in the message already
            for row in rows:
                log.error("  unmapped node %s (%s): %s", *row)
        raise _with_step(err, name) from err
    except KeyboardInterrupt as err:
        status = "interrupted"
        raise _interrupted(plan, index, err, resumable) from None
    except Exception as err:
        log.error("step %s failed:\n%s", name, traceback.format_exc())
        raise BuildError(
            f"step {name} failed with {type(err).__name__}: {err} (traceback in {out / LOG})"
        ) from err
    finally:
        elapsed = round(time.perf_counter() - t0, 3)
        plan.bdir.record(name, status, written_between(before, snapshot(out)), elapsed)
    times[name] = elapsed
    write_text_atomic(out / TIMES, json.dumps(times, indent=2) + "\n")
    log.info("done %s in %.2f s", label, elapsed)
    if progress:
        print(f"minifinn build {label} done in {elapsed:.2f} s", flush=True)
    return model


def _interrupted(plan, index, err, resumable):
    """The BuildInterrupted for an interruption of step ``index`` (logged with the resume command)."""
    name = plan.resolved[index][0]
    signum = getattr(err, "signum", 2)
    children = getattr(err, "children", 0)
    command = resume_command(plan, index) if resumable else None
    how = (f"resume with: {command}" if command else
           f"resume from Python with start_step={name!r} (a step of this build is a Python function)")
    done = ", ".join(plan.resolved[i][0] for i in range(plan.start, index)) or "none"
    stopped = f", stopped {children} child process(es)" if children else ""
    message = (f"interrupted by {getattr(err, 'signal_name', 'SIGINT')} during {name}{stopped}; the outputs of the "
               f"steps before it are kept in {plan.cfg.output_dir} (this run completed: {done}); {how}")
    log.error(message)
    return BuildInterrupted(signum, children, name, message, command)
