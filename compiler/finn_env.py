"""Make finn-plus usable offline (no Vivado, no FINN settings file).

finn-plus reads its settings on first use and wants ``FINN_BUILD_DIR`` to exist. ``ensure_finn_offline`` installs the
dummy settings finn-plus provides for this purpose and points ``FINN_BUILD_DIR`` at an existing directory (the
user's value if set, otherwise ``~/.cache/minifinn/finn_build``). ``finn_build_dir_at`` points FINN's build
directory (where ``make_build_dir`` puts generated code, simulations and projects) somewhere else for a while: the
runner points it into the output folder, so a build keeps everything its resume needs there.
"""

import os
from contextlib import contextmanager
from pathlib import Path

from finn.util.settings import get_settings, initialize_dummy_settings

_DONE = False


def ensure_finn_offline(build_dir=None):
    """Prepare finn-plus for use without vendor tools; idempotent. Returns the FINN build directory."""
    global _DONE
    path = Path(build_dir or os.environ.get("FINN_BUILD_DIR") or Path.home() / ".cache" / "minifinn" / "finn_build")
    path.mkdir(parents=True, exist_ok=True)
    os.environ["FINN_BUILD_DIR"] = str(path)
    if not _DONE:
        initialize_dummy_settings()
        _DONE = True
    return path


@contextmanager
def finn_build_dir_at(path):
    """Within the block FINN's build directory (its settings and ``FINN_BUILD_DIR`` for child processes) is
    ``path`` (created); afterwards both are restored."""
    path = Path(path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    ensure_finn_offline()
    settings = get_settings()
    old_setting, old_env = settings.finn_build_dir, os.environ.get("FINN_BUILD_DIR")
    settings.finn_build_dir = path
    os.environ["FINN_BUILD_DIR"] = str(path)
    try:
        yield path
    finally:
        settings.finn_build_dir = old_setting
        if old_env is None:
            os.environ.pop("FINN_BUILD_DIR", None)
        else:
            os.environ["FINN_BUILD_DIR"] = old_env
