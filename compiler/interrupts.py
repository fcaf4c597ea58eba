"""Ctrl-C and SIGTERM during a build: stop every child process (simulators, g++, yosys, their own children) and
raise ``Interrupted`` (a KeyboardInterrupt) in the build, which records the interrupted step and says how to resume.

Steps start their tools with ``subprocess.run``, which kills its direct child when an exception interrupts it; the
children's children (``iverilog`` runs ``ivlpp`` and ``ivl``, a shell runs its commands) would survive it, and a
SIGTERM sent to the build alone reaches no child. So the handler first terminates every descendant of the build
process (``psutil``), waits briefly, kills those left, then raises.
"""

import signal
import threading
from contextlib import contextmanager

import psutil

#: seconds a child gets to exit after SIGTERM before it is killed
GRACE_SECONDS = 3.0


class Interrupted(KeyboardInterrupt):
    """The build was interrupted by ``signum`` (SIGINT: Ctrl-C, SIGTERM); ``children``: child processes stopped."""

    def __init__(self, signum, children=0, message=None):
        self.signum = signum
        self.children = children
        self.signal_name = signal.Signals(signum).name
        super().__init__(message or f"interrupted by {self.signal_name}")

    @property
    def exit_code(self):
        return 128 + self.signum


def stop_children(grace=GRACE_SECONDS):
    """Terminate every descendant process of this one, kill those still alive after ``grace`` s; returns how many
    there were."""
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return 0
    for child in children:
        try:
            child.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(children, timeout=grace)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            pass
    return len(children)


@contextmanager
def children_stop_on_signals():
    """Within the block SIGINT and SIGTERM stop the child processes and raise ``Interrupted``. Outside the main
    thread (where Python cannot install signal handlers) the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum, stop_children())

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
