"""An image → PP-OCRv4 det's input: resized to 320 × 320 (both multiples of 32, as the det net needs),
(x/255 − 0.5)/0.5 (rapidocr's det mean and std)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIDE = 320


def preprocess(path: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    img = Image.open(path).convert("RGB").resize((SIDE, SIDE), Image.BILINEAR)
    x = (np.asarray(img, np.float32) / 255.0 - 0.5) / 0.5
    return {"x": x.transpose(2, 0, 1)[None].astype(np.float32)}
