"""One step file → {x, state} (the framing and the carried state are made by make_data.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def preprocess(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {"x": z["x"].astype(np.float32), "state": z["state"].astype(np.float32)}
