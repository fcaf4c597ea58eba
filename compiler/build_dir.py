"""The output folder of a build: which model and config made it, which step wrote which output, atomic writes.

``OUTPUT_DIR/build_manifest.json`` records the model (sha256 of its serialized ModelProto, and where it came from),
the config fields that decide the outputs (``config_identity``: every field but the output folder, the step
selection, the verification input and ``save_intermediate_models``; config files by content) and, per step run, its
status ("done", "failed", "interrupted") and the outputs it wrote (paths relative to the folder, found by comparing
the folder's first two levels before and after the step: new entries, and files that changed).

``plan_folder`` decides, before any work, what a new run may do with a folder:

* no earlier build: go ahead (a resume then needs the earlier step's intermediate model, which the runner checks);
* an earlier build of the same model and config: a run from the first step removes every recorded output first, a
  resume at step S keeps the outputs of the steps before S and removes the others (except a path a kept step
  wrote too), so no stale report (e.g. a ``report/verification.json``) stands beside new outputs;
* an earlier build of another model or config (or a build without a manifest): refused, naming what differs, unless
  ``force``: then every recorded output is removed and the build starts at the first step.

Intermediate models, reports and the manifest are written to a temporary file and moved into place
(``write_text_atomic``, ``save_model_atomic``), so an interrupted write leaves the previous complete file.
"""

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from compiler.errors import MinifinnError

MANIFEST = "build_manifest.json"
TIMES = "time_per_step.json"
LOG = "build.log"
RESUME_CONFIG = "resume_config.json"
#: files the runner itself keeps up to date; never counted as a step's output
RUNNER_FILES = (MANIFEST, TIMES, LOG, RESUME_CONFIG)
#: what a build without a manifest (older minifinn) may hold; removed by --force
UNRECORDED_OUTPUTS = ("intermediate_models", "report", "finn_build", "stitched_rtlsim", "driver", "hw_sources",
                      "stitched_ip", "deploy", "build_config.json", "build_vivado.sh", TIMES)
#: config fields that do not change what a step produces
NOT_IDENTITY = ("output_dir", "steps", "start_step", "stop_step", "verify_input_npy", "save_intermediate_models")
CONFIG_FILES = ("folding_config_file", "specialize_layers_config_file")


class BuildDirError(MinifinnError):
    """The output folder holds a build this run must not mix with (another model or config, an unfinished step)."""


# --- atomic writes ------------------------------------------------------------------------------------------------
def _replace_via_temp(path, write):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    _replace_via_temp(path, lambda tmp: tmp.write_text(text))


def save_model_atomic(model, path):
    """``model.save(path)`` through a temporary file and ``os.replace``."""
    _replace_via_temp(path, lambda tmp: model.save(str(tmp)))


# --- identity -----------------------------------------------------------------------------------------------------
def model_digest(model):
    """sha256 of the serialized ModelProto of a ModelWrapper (the same for a model and its saved copy)."""
    return hashlib.sha256(model.model.SerializeToString(deterministic=True)).hexdigest()


def _file_digest(path):
    p = Path(path)
    return "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else f"missing:{path}"


def config_identity(cfg):
    data = {k: v for k, v in cfg.to_dict().items() if k not in NOT_IDENTITY}
    for field in CONFIG_FILES:
        if data.get(field):
            data[field] = _file_digest(data[field])
    return json.loads(json.dumps(data, default=str))


def _config_changes(old, new):
    def show(value):
        if isinstance(value, str) and value.startswith("sha256:"):
            return f"a file with sha256 {value[7:19]}"
        return repr(value)

    keys = sorted(set(old) | set(new))
    return [f"{k}: {show(old.get(k))} -> {show(new.get(k))}" for k in keys if old.get(k) != new.get(k)]


# --- the folder's first two levels --------------------------------------------------------------------------------
def snapshot(out):
    """{relative path: (is folder, mtime_ns, size)} of the entries of ``out`` and of its sub-folders."""
    out = Path(out)
    entries = {}
    if not out.is_dir():
        return entries
    for p in out.iterdir():
        if p.name in RUNNER_FILES:
            continue
        try:
            st = p.lstat()
        except FileNotFoundError:
            continue
        is_dir = p.is_dir() and not p.is_symlink()
        entries[p.name] = (is_dir, st.st_mtime_ns, st.st_size)
        if is_dir:
            for q in p.iterdir():
                try:
                    sq = q.lstat()
                except FileNotFoundError:
                    continue
                entries[f"{p.name}/{q.name}"] = (q.is_dir() and not q.is_symlink(), sq.st_mtime_ns, sq.st_size)
    return entries


def written_between(before, after):
    """Paths new in ``after`` (folders and their entries) and files changed between the two snapshots."""
    return sorted(k for k, v in after.items() if k not in before or (not v[0] and before[k] != v))


def _covers(path, kept):
    """Removing ``path`` would remove ``kept`` (the same path or a folder holding it)."""
    return kept == path or kept.startswith(path + "/")


def remove_outputs(out, paths, keep=()):
    """Remove the recorded ``paths`` under ``out``, except those whose removal would remove a path in ``keep``."""
    out = Path(out)
    removed = []
    for rel in sorted(set(paths)):
        if any(_covers(rel, k) for k in keep) or rel in RUNNER_FILES:
            continue
        target = out / rel
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists() or target.is_symlink():
            target.unlink()
        else:
            continue
        removed.append(rel)
    return removed


# --- the manifest -------------------------------------------------------------------------------------------------
class BuildDir:
    """The manifest of ``out``: read at the start of a run, rewritten after every step."""

    def __init__(self, out):
        self.out = Path(out)
        self.path = self.out / MANIFEST
        self.previous = self._read()
        self.data = None

    def _read(self):
        if not self.path.is_file():
            return None
        try:
            data = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {"unreadable": True}
        return data if isinstance(data, dict) else {"unreadable": True}

    def holds_unrecorded_build(self):
        return self.previous is None and (self.out / "intermediate_models").is_dir()

    def done_steps(self):
        return [r["step"] for r in (self.previous or {}).get("records", []) if r.get("status") == "done"]

    def start(self, model_id, config_id, names, kept_records):
        self.data = {"model": model_id or (self.previous or {}).get("model"), "config": config_id, "steps": names,
                     "records": list(kept_records), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.save()

    def record(self, step, status, outputs, seconds):
        self.data["records"] = [r for r in self.data["records"] if r["step"] != step]
        self.data["records"].append({"step": step, "status": status, "outputs": outputs, "seconds": seconds})
        self.save()

    def save(self):
        self.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path, json.dumps(self.data, indent=2) + "\n")


def _describe(model_id):
    source = model_id.get("source")
    digest = f"sha256 {model_id['sha256'][:12]}"
    return f"{source}, {digest}" if source and source != "the model" else digest


def plan_folder(bdir, model_id, config_id, names, start, force):
    """Check the folder against this run (module docstring); returns ``(start, records to keep, paths to remove,
    note or None)``. Raises a BuildDirError when the run must not go ahead. Removes nothing itself."""
    prev = bdir.previous
    out = bdir.out
    if prev is None and not bdir.holds_unrecorded_build():
        return start, [], [], None
    differs = []
    if prev is None:
        differs.append("it has no build_manifest.json (made by an older minifinn or another tool), so which model "
                       "and config made it is unknown")
    elif prev.get("unreadable"):
        differs.append(f"its {MANIFEST} is unreadable")
    else:
        old_model = prev.get("model") or {}
        if model_id and old_model.get("sha256") and old_model["sha256"] != model_id["sha256"]:
            differs.append(f"it was built from another model ({_describe(old_model)}) than this run's "
                           f"({_describe(model_id)})")
        changes = _config_changes(prev.get("config") or {}, config_id)
        if changes:
            differs.append("it was built with another config (" + "; ".join(changes) + ")")
    records = (prev or {}).get("records", []) if not (prev or {}).get("unreadable") else []
    recorded = [p for r in records for p in r.get("outputs", [])]
    if differs:
        if not force:
            raise BuildDirError(f"{out} holds another build: {'; '.join(differs)}. Use another --output-dir, or "
                                "--force to replace that build (its outputs are removed)")
        if model_id is None:
            raise BuildDirError(f"{out} holds another build ({'; '.join(differs)}); starting clean needs the model")
        paths = recorded + ([] if prev else [p for p in UNRECORDED_OUTPUTS if (out / p).exists()])
        return 0, [], paths, f"replacing the earlier build in {out} ({'; '.join(differs)})"
    if start == 0:
        return 0, [], recorded, None
    done = bdir.done_steps()
    if names[start - 1] not in done:
        raise BuildDirError(f"cannot resume at {names[start]!r}: the build in {out} has not completed "
                            f"{names[start - 1]!r} (completed: {', '.join(done) or 'none'}); resume at the first "
                            "step it has not completed")
    kept = [r for r in records if r["step"] in names[:start]]
    keep_paths = [p for r in kept for p in r.get("outputs", [])]
    drop = [p for r in records if r not in kept for p in r.get("outputs", [])]
    return start, kept, [p for p in drop if not any(_covers(p, k) for k in keep_paths)], None
