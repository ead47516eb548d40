"""One candidate (already 48 × 48 and scaled to (x − 127.5)/128 by the cascade) → ONet's input."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def preprocess(path: Path) -> dict[str, np.ndarray]:
    return {"image": np.load(path).astype(np.float32).reshape(1, 3, 48, 48)}
