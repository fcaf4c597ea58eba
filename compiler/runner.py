"""Step runner: an ordered list of ``step(model, cfg) -> model`` functions, FINN-style.

For every step the runner saves ``output_dir/intermediate_models/<step>.onnx`` and records wall time in
``output_dir/time_per_step.json``; log records of the whole build go to ``output_dir/build.log``. ``cfg.start_step``
resumes from the intermediate model the previous step saved; ``cfg.stop_step`` ends after the named step.

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
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper

from compiler import steps as standard
from compiler import synth_check, vendor
from compiler.errors import MinifinnError
from compiler.finn_env import ensure_finn_offline
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

log = logging.getLogger("minifinn")


class BuildError(MinifinnError):
    pass


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
        return step, fn
    raise BuildError(f"unknown build step {step!r}; known steps: {', '.join(STEPS)}")


def _load_model(model):
    if isinstance(model, ModelWrapper):
        return model
    path = Path(model)
    if not path.is_file():
        raise BuildError(f"model file {path} does not exist")
    try:
        return ModelWrapper(str(path))
    except Exception as err:
        raise BuildError(f"{path} is not a readable ONNX model: {err}") from None


def _select(names, cfg):
    start = 0
    stop = len(names)
    if cfg.start_step is not None:
        if cfg.start_step not in names:
            raise BuildError(f"start_step {cfg.start_step!r} is not among the steps: {names}")
        start = names.index(cfg.start_step)
    if cfg.stop_step is not None:
        if cfg.stop_step not in names:
            raise BuildError(f"stop_step {cfg.stop_step!r} is not among the steps: {names}")
        stop = names.index(cfg.stop_step) + 1
    if stop <= start:
        raise BuildError(f"stop_step {cfg.stop_step!r} comes before start_step {cfg.start_step!r}")
    return start, stop


def _with_step(err, step):
    """``err`` again, its message prefixed with the step (same type, same extra attributes)."""
    new = copy.copy(err)
    new.args = (f"step {step}: {err}",) + err.args[1:]
    return new


def run_build(model, cfg, steps=None, progress=True):
    """Run the build steps on ``model`` (ModelWrapper or path); returns the final model.

    Any exception inside a step is logged with its traceback to ``build.log`` and re-raised as a ``BuildError``
    naming the step (a ``MinifinnError`` keeps its own message, which already says what to fix).
    """
    ensure_finn_offline()
    out = Path(cfg.output_dir)
    inter = out / "intermediate_models"
    inter.mkdir(parents=True, exist_ok=True)
    resolved = [resolve_step(s) for s in (steps if steps is not None else (cfg.steps or DEFAULT_STEPS))]
    if not resolved:
        raise BuildError("no build steps given")
    names = [n for n, _ in resolved]
    start, stop = _select(names, cfg)
    handler = logging.FileHandler(out / "build.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    times_path = out / "time_per_step.json"
    times = json.loads(times_path.read_text()) if (start > 0 and times_path.is_file()) else {}
    try:
        if start > 0:
            previous = inter / f"{names[start - 1]}.onnx"
            if not previous.is_file():
                raise BuildError(
                    f"cannot resume at {names[start]!r}: {previous} is missing (run the earlier steps first)"
                )
            model = _load_model(previous)
        else:
            model = _load_model(model)
        for index in range(start, stop):
            name, fn = resolved[index]
            label = f"[{index + 1}/{len(names)}] {name}"
            if progress:
                print(f"minifinn build {label} ...", flush=True)
            log.info("start %s", label)
            t0 = time.perf_counter()
            try:
                model = fn(model, cfg)
            except MinifinnError as err:
                # the message once, then where it was raised (the traceback's frames without repeating it)
                log.error("step %s failed: %s\n%s", name, err, "".join(traceback.format_tb(err.__traceback__)))
                rows = getattr(err, "rows", ())
                if len(rows) > MAX_LISTED_NODES:  # fewer are in the message already
                    for row in rows:
                        log.error("  unmapped node %s (%s): %s", *row)
                raise _with_step(err, name) from err
            except Exception as err:
                log.error("step %s failed:\n%s", name, traceback.format_exc())
                raise BuildError(
                    f"step {name} failed with {type(err).__name__}: {err} (traceback in {out / 'build.log'})"
                ) from err
            elapsed = time.perf_counter() - t0
            times[name] = round(elapsed, 3)
            times_path.write_text(json.dumps(times, indent=2) + "\n")
            if cfg.save_intermediate_models:
                model.save(str(inter / f"{name}.onnx"))
            log.info("done %s in %.2f s", label, elapsed)
            if progress:
                print(f"minifinn build {label} done in {elapsed:.2f} s", flush=True)
        return model
    finally:
        log.removeHandler(handler)
        handler.close()
