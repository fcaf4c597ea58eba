"""Make finn-plus usable offline (no Vivado, no FINN settings file).

finn-plus reads its settings on first use and wants ``FINN_BUILD_DIR`` to exist. ``ensure_finn_offline`` installs the
dummy settings finn-plus provides for this purpose and points ``FINN_BUILD_DIR`` at an existing directory (the
user's value if set, otherwise ``~/.cache/minifinn/finn_build``).
"""

import os
from pathlib import Path

from finn.util.settings import initialize_dummy_settings

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
