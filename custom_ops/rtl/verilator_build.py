"""Verilated simulation binaries, compiled once per distinct design and cached on disk.

A design is a list of Verilog sources (name, text), a top module and the harness's compile-time defines
(``MF_N_IN``: input streams, ``MF_FIFOS``: a stitched partition's FIFO ports). Its binary is the Verilated model
linked with the AXI-stream harness (``verilator_harness.cpp``); everything that changes between runs (input words,
stream lengths, gaps, FIFO depths, the memory files a design reads with ``$readmemh`` at start-up, by paths relative
to the run's working directory) comes from files and arguments at run time, so one binary serves every image and
every node or partition with the same sources.

The cache key is a hash of the source texts and names, the top, the defines, the harness, the compiler flags and
the Verilator version; binaries live in ``cache_dir()``: ``$MINIFINN_VERILATOR_CACHE``, else
``~/.cache/minifinn/verilator``. A build runs in a private directory and is renamed into place, so concurrent
builds of one design (threads or processes) never see a half-written binary. ``compile_async`` runs builds on a
small thread pool (``$MINIFINN_VERILATOR_JOBS`` workers, default: the number of cores, at most 2), so the nodes of a
graph compile in parallel while the caller prepares the next.

Flags, measured on the flagship ViT partition (81 nodes, 18 MB of generated C++): Verilator's own optimizations
at their default; ``--x-assign fast --x-initial 0`` (registers start at 0; every design here resets its state);
``--output-split-cfuncs 1000`` (g++'s alias analysis is superlinear in function size: the run-time code compiles in
19 s instead of 28 s at -O1, and runs as fast); warnings not fatal (``-Wno-lint -Wno-style``: the cores' width
warnings are comparisons and extensions Verilog defines, they change no bits). C++: the run-time code
(``Vtop*.cpp``) at ``-O1`` in ``jobs()`` parallel units (-O0 compiles in half the time but simulates 10x slower),
the initialization code (``*__Slow.cpp``, run once) at ``-O0``; a small design (a node: < 1 MB of C++) in one unit
at ``-O0`` with a precompiled ``verilated.h`` (~1 s a node). The Verilator runtime objects and the precompiled
header are built once per cache directory.
"""

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from compiler.errors import MinifinnError

HERE = Path(__file__).resolve().parent
HARNESS = HERE / "verilator_harness.cpp"
CACHE_ENV = "MINIFINN_VERILATOR_CACHE"
JOBS_ENV = "MINIFINN_VERILATOR_JOBS"
VERILATOR_FLAGS = ["--cc", "--prefix", "Vtop", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "fast",
                   "--x-initial", "0", "--output-split-cfuncs", "1000"]
CXX_BASE = ["-std=gnu++17", "-faligned-new", "-fcf-protection=none", "-w", "-DVM_COVERAGE=0", "-DVM_SC=0",
            "-DVM_TRACE=0", "-DVM_TRACE_FST=0", "-DVM_TRACE_VCD=0"]
OPT_FAST, OPT_SLOW = "-O1", "-O0"
SMALL_DESIGN_BYTES = 1_000_000  # generated C++ below this compiles in one unoptimized unit
RUNTIME = ("verilated.cpp", "verilated_threads.cpp")
PCH = "mf_pch.h"
PCH_HEADERS = ("verilated.h", "cstdint", "cstdio", "cstdlib", "cstring", "fstream", "map", "string", "vector")


class VerilatorError(MinifinnError):
    """Verilator or the C++ compiler refused a design."""


def available():
    """True when ``verilator`` and ``g++`` are on PATH."""
    return shutil.which("verilator") is not None and shutil.which("g++") is not None


def cache_dir():
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "minifinn" / "verilator")


def jobs():
    return max(1, int(os.environ.get(JOBS_ENV) or min(2, os.cpu_count() or 1)))


@functools.lru_cache(maxsize=None)
def _version():
    return subprocess.run(["verilator", "--version"], capture_output=True, text=True).stdout.strip()


@functools.lru_cache(maxsize=None)
def _include_dir():
    root = os.environ.get("VERILATOR_ROOT")
    if root:
        return Path(root) / "include"
    out = subprocess.run(["verilator", "--getenv", "VERILATOR_ROOT"], capture_output=True, text=True).stdout.strip()
    return Path(out) / "include"


def design_key(sources, top, defines):
    """The cache key of a design: ``sources`` = [(file name, Verilog text)]."""
    h = hashlib.sha256()
    flags = " ".join([*VERILATOR_FLAGS, *CXX_BASE, OPT_FAST, OPT_SLOW, str(SMALL_DESIGN_BYTES)])
    for part in [_version(), flags, HARNESS.read_text(), top, repr(sorted(defines.items()))]:
        h.update(part.encode() + b"\0")
    for name, text in sources:
        h.update(name.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()[:24]


def _run(cmd, cwd, what, label):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        raise VerilatorError(f"{label}: {what} failed:\n{(proc.stderr or proc.stdout)[-3000:]}")
    return proc


def _publish(tmp, final):
    """Rename the finished build ``tmp`` to ``final``; another build of the same design may have won the race."""
    try:
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.is_dir():
            raise


def _compile_all(jobs_list, label, what):
    """Run the compiler commands ``jobs_list`` = [(argv, cwd)] at once; the first error is raised."""
    procs = [subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for argv, cwd in jobs_list]
    errors = [err for p in procs for _, err in [p.communicate()] if p.returncode]
    if errors:
        raise VerilatorError(f"{label}: {what} failed:\n{errors[0][-3000:]}")


def _runtime(inc):
    """The per-cache-directory part shared by every design: the Verilator runtime objects (``verilated.o``,
    ``verilated_threads.o``) and a precompiled header of ``verilated.h`` for the unoptimized translation units
    (it halves their compile time)."""
    key = hashlib.sha256(" ".join([_version(), *CXX_BASE, OPT_FAST, OPT_SLOW]).encode()).hexdigest()[:16]
    final = cache_dir() / f"runtime-{key}"
    if not final.is_dir():
        cache_dir().mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="runtime-", dir=cache_dir()))
        try:
            (tmp / PCH).write_text("".join(f"#include <{h}>\n" for h in PCH_HEADERS))
            incs = [f"-I{inc}", f"-I{inc / 'vltstd'}"]
            _compile_all([(["g++", *CXX_BASE, OPT_FAST, *incs, "-c", str(inc / src), "-o", src[:-4] + ".o"], tmp)
                          for src in RUNTIME] +
                         [(["g++", *CXX_BASE, OPT_SLOW, *incs, "-x", "c++-header", PCH, "-o", PCH + ".gch"], tmp)],
                         "verilator", "compiling the Verilator runtime")
            _publish(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def _units(obj, defines):
    """The generated C++ of ``obj`` as translation units [(file, optimization)]: a small design in one unit at
    ``OPT_SLOW`` (compile time dominates its runs); a large one's run-time code (``Vtop*.cpp``) at ``OPT_FAST`` in
    ``jobs()`` units of about equal size and its initialization code (``*__Slow.cpp``, run once) in one unit at
    ``OPT_SLOW``. The harness goes with the first unit; unoptimized units start with the precompiled header."""
    files = sorted(obj.glob("Vtop*.cpp"), key=lambda p: -p.stat().st_size)
    if sum(f.stat().st_size for f in files) < SMALL_DESIGN_BYTES:
        groups = [(OPT_SLOW, files)]
    else:
        fast = [f for f in files if not f.stem.endswith("__Slow")]
        bins = [[] for _ in range(max(1, min(jobs(), len(fast))))]
        sizes = [0] * len(bins)
        for f in fast:  # largest first onto the lightest unit
            k = sizes.index(min(sizes))
            bins[k].append(f)
            sizes[k] += f.stat().st_size
        groups = [(OPT_FAST, b) for b in bins] + [(OPT_SLOW, [f for f in files if f.stem.endswith("__Slow")])]
    units = []
    for k, (opt, names) in enumerate(groups):
        lines = [f'#include "{PCH}"'] if opt == OPT_SLOW else []
        lines += [f"#define {d} {v}" for d, v in defines.items()] + [f'#include "{f.name}"' for f in names]
        if k == 0:
            lines.append(f'#include "{HARNESS}"')
        (obj / f"unit{k}.cpp").write_text("\n".join(lines) + "\n")
        units.append((f"unit{k}.cpp", opt))
    return units


def build(sources, top, defines, label="verilator"):
    """The cached binary of a design (compiling it when it is not cached): (path, seconds spent compiling, 0 on a
    cache hit)."""
    key = design_key(sources, top, defines)
    final = cache_dir() / key
    binary = final / "sim"
    if binary.is_file():
        return binary, 0.0
    start = time.perf_counter()
    inc = _include_dir()
    runtime = _runtime(inc)
    tmp = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=cache_dir()))
    try:
        src_dir = tmp / "src"
        src_dir.mkdir()
        for name, text in sources:
            (src_dir / name).write_text(text)
        obj = tmp / "obj"
        _run(["verilator", *VERILATOR_FLAGS, "--top-module", top, "--Mdir", str(obj),
              *[str(src_dir / name) for name, _ in sources]], tmp, "verilator", label)
        incs = [f"-I{runtime}", "-I.", f"-I{inc}", f"-I{inc / 'vltstd'}"]
        units = _units(obj, defines)
        _compile_all([(["g++", *CXX_BASE, opt, *incs, "-c", u, "-o", u[:-4] + ".o"], obj) for u, opt in units],
                     label, "g++ of the Verilated model")
        _run(["g++", *[u[:-4] + ".o" for u, _ in units], *[str(runtime / (src[:-4] + ".o")) for src in RUNTIME],
              "-pthread", "-latomic", "-o", str(tmp / "sim")], obj, "linking", label)
        shutil.rmtree(obj)
        (tmp / "key.txt").write_text(f"{label}\ntop {top}\n{defines}\n")
        _publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return binary, time.perf_counter() - start


class _Builds:
    """Builds in flight in this process, one per design key (two nodes of one configuration share a build)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pool = None
        self.futures = {}

    def submit(self, sources, top, defines, label):
        key = (str(cache_dir()), design_key(sources, top, defines))
        with self.lock:
            fut = self.futures.get(key)
            if fut is None or (fut.done() and fut.exception() is not None):
                if self.pool is None:
                    self.pool = ThreadPoolExecutor(max_workers=jobs(), thread_name_prefix="verilator")
                fut = self.pool.submit(build, sources, top, defines, label)
                self.futures[key] = fut
            return fut


_BUILDS = _Builds()


def compile_async(sources, top, defines, label="verilator"):
    """Start (or join) the build of a design; returns a future of ``build``'s result."""
    return _BUILDS.submit(sources, top, defines, label)


def run_binary(binary, cwd, args, label, timeout=None):
    """Run a harness binary; returns its stdout. ``args`` = {key: value} (harness command line)."""
    proc = subprocess.run([str(binary), *[f"{k}={v}" for k, v in args.items()]], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode:
        raise VerilatorError(f"{label}: Verilated simulation failed (exit {proc.returncode}):\n"
                             f"{(proc.stderr or proc.stdout)[-2000:]}")
    return proc.stdout
