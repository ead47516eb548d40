"""Values as plain JSON: arrays → lists, numpy scalars → numbers, NaN and infinities → None.

One helper for the bot (a task's `answers.json`, the report) and for the run script a deployment
ships: the package stage copies this file beside `run.py`, which imports it from there. So it
imports nothing but numpy (which run.py needs anyway), and nothing of the bot; numpy only when called,
because the bot loads this module on a fully cached run, which must not pay for numpy (~0.15 s).
"""


def jsonable(x):
    """`x` with every array and numpy scalar made a plain list or number, NaN kept as None."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path

    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        return jsonable(x.item())
    if isinstance(x, float):
        return x if np.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x
