"""Photos for the NudeNet detector: the portraits scikit-image and matplotlib ship (astronaut,
grace_hopper, camera) with seeded crops and mirror images of them, and scenes with no person
(coffee, chelsea, rocket, ...). Also copies NudeNet's 320n ONNX out of its wheel into `weights/`."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import media  # noqa: E402

PEOPLE = ["astronaut", "grace_hopper", "camera"]
SCENES = {"val": ["coffee", "chelsea", "rocket"], "calib": ["coins", "horse", "brick", "hubble_deep_field",
                                                                     "immunohistochemistry", "colorwheel"]}


def variant(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    s = float(rng.uniform(0.7, 0.95))
    ch, cw = int(h * s), int(w * s)
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    out = img[y:y + ch, x:x + cw]
    return np.ascontiguousarray(out[:, ::-1] if rng.integers(2) else out)


def make(folder: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    media.clean(folder, "data/val", "data/calib", "weights")
    src = Path(importlib.util.find_spec("nudenet").submodule_search_locations[0])
    shutil.copy(src / "320n.onnx", folder / "weights/320n.onnx")
    for name in PEOPLE:
        img = media.photo(name)
        media.save_png(img, folder / f"data/val/{name}.png")
        for k in range(3):
            media.save_png(variant(img, rng), folder / f"data/calib/{name}_{k}.png")
    for split, names in SCENES.items():
        for name in names:
            media.save_png(media.photo(name), folder / f"data/{split}/{name}.png")


if __name__ == "__main__":
    make(Path(__file__).resolve().parent, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
