"""Validation: 6 photos and, for each, a mirrored 90 % crop (its nearest neighbour, as a track's next
detection would be); calibration: 16 seeded crops of 12 other photos."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import media  # noqa: E402

VALIDATION = ["astronaut", "chelsea", "coffee", "rocket", "grace_hopper", "camera"]
CALIBRATION = ["coins", "horse", "hubble_deep_field", "immunohistochemistry", "retina", "brick", "gravel",
               "grass", "colorwheel", "logo", "cell", "clock"]


def crop(img: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    h, w = img.shape[:2]
    ch, cw = int(h * share), int(w * share)
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return img[y:y + ch, x:x + cw]


def make(folder: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    media.clean(folder, "data/val", "data/calib")
    for name in VALIDATION:
        img = media.photo(name)
        media.save_png(img, folder / f"data/val/{name}.png")
        media.save_png(np.ascontiguousarray(crop(img, rng, 0.9)[:, ::-1]), folder / f"data/val/{name}_mirror.png")
    for k in range(16):
        img = media.photo(CALIBRATION[k % len(CALIBRATION)])
        media.save_png(crop(img, rng, float(rng.uniform(0.6, 1.0))), folder / f"data/calib/{k:02d}.png")


if __name__ == "__main__":
    make(Path(__file__).resolve().parent, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
