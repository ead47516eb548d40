"""ONet's realistic inputs: the candidates the cascade hands it. facenet-pytorch's MTCNN (FP32, on
the CPU) runs over photos with and without faces; a hook on ONet keeps every 48 × 48 candidate
batch it is given, one .npy per candidate. Validation photos: grace_hopper, astronaut, camera
(faces) and chelsea, coffee, rocket (none), each also mirrored; calibration: other photos and the
lfw_subset faces scikit-image ships."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import media  # noqa: E402
from bot.model_code import load_callable  # noqa: E402

# the sibling model.py by path: a bare `from model import` would get another definition's model module
# when one process loads several (bench/trained_quant_compare.py --only all)
stand_ins = load_callable(Path(__file__).resolve().parent, "model.py:stand_ins", "data.make")

VALIDATION = ["grace_hopper", "astronaut", "camera", "chelsea", "coffee", "rocket"]
CALIBRATION = ["coins", "horse", "clock", "brick", "immunohistochemistry", "hubble_deep_field"]


def candidates(images: list[np.ndarray]) -> list[np.ndarray]:
    import torch

    stand_ins()
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=True, device="cpu")
    got: list[np.ndarray] = []
    hook = mtcnn.onet.register_forward_hook(lambda m, inp, out: got.extend(inp[0].detach().numpy()[:, None]))
    with torch.no_grad():
        for img in images:
            mtcnn.detect(img)
    hook.remove()
    return got


def lfw_like(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """lfw_subset's 25 × 25 grey faces, upsampled to 48 × 48 and scaled as the cascade does."""
    import skimage.data
    from PIL import Image

    faces = skimage.data.lfw_subset()[:100]
    out = []
    for i in rng.choice(len(faces), n, replace=False):
        g = np.asarray(Image.fromarray((faces[i] * 255).astype(np.uint8)).resize((48, 48)), np.float32)
        out.append(((np.stack([g] * 3) - 127.5) * 0.0078125)[None].astype(np.float32))
    return out


def make(folder: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    media.clean(folder, "data/val", "data/calib")
    photos = [media.photo(n) for n in VALIDATION]
    val = candidates(photos + [np.ascontiguousarray(p[:, ::-1]) for p in photos])
    cal = candidates([media.photo(n) for n in CALIBRATION]) + lfw_like(rng, 24)
    for split, items in (("val", val), ("calib", cal)):
        for k, x in enumerate(items):
            np.save(folder / f"data/{split}/{k:04d}.npy", x.astype(np.float32))


if __name__ == "__main__":
    make(Path(__file__).resolve().parent, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
