"""A text-line image → PP-OCRv4 rec's input as rapidocr prepares it: height 48, width scaled with the
aspect ratio up to 320, (x/255 − 0.5)/0.5, padded on the right with zeros to 320."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

H, W = 48, 320


def preprocess(path: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    img = Image.open(path).convert("RGB")
    w = min(W, int(math.ceil(H * img.width / img.height)))
    x = (np.asarray(img.resize((w, H), Image.BILINEAR), np.float32) / 255.0 - 0.5) / 0.5
    out = np.zeros((3, H, W), np.float32)
    out[:, :, :w] = x.transpose(2, 0, 1)
    return {"x": out[None]}
