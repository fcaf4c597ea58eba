"""Reading constant parameters of a graph: ``scalar_initializer``, the one-element constants (scales, epsilon)
that passes matching a pattern of the lowered graph require."""

import numpy as np


def scalar_initializer(model, name):
    """The value of a one-element initializer ``name`` as a float (rounded to fp32, as the graph computes with it),
    or None when it is not a constant, has several elements or is not finite."""
    value = model.get_initializer(name)
    if value is None or np.asarray(value).size != 1:
        return None
    value = float(np.asarray(value, dtype=np.float32).ravel()[0])
    return value if np.isfinite(value) else None
