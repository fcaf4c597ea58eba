"""Fingerprint of minifinn's resource estimate models, so cached costs can tell when they are stale.

The LUT/FF estimates come from ``custom_ops/resource_model.json`` (the Yosys-fitted MVAU model) and
``custom_ops/threshold_cost.py`` (the Yosys-fitted threshold stage). A result computed with other versions of these
files (e.g. a design-space-exploration point cached before a recalibration) must be re-costed, not reused.
"""

import hashlib
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
MODEL_FILES = (_ROOT / "custom_ops" / "resource_model.json", _ROOT / "custom_ops" / "threshold_cost.py")


def cost_model_fingerprint():
    """Short sha256 of the estimate model files' contents."""
    h = hashlib.sha256()
    for path in MODEL_FILES:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]
