"""A photo → NudeNet's input as `nudenet._read_image` makes it: padded on the right and bottom to a
square with black, resized to 320 × 320, RGB, /255."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIDE = 320


def preprocess(path: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    img = Image.open(path).convert("RGB")
    side = max(img.size)
    square = Image.new("RGB", (side, side), (0, 0, 0))
    square.paste(img, (0, 0))
    x = np.asarray(square.resize((SIDE, SIDE), Image.BILINEAR), np.float32) / 255.0
    return {"images": x.transpose(2, 0, 1)[None].astype(np.float32)}
