"""Which quantization defaults win on *trained* weights: a tiny measurement on the simulated HTP.

Trains a small convnet (conv-BN-ReLU ×4, one depthwise; global pool, linear) for 150 Adam steps
(seconds on an idle core) on synthetic gratings (4 orientations, random frequency, phase, colour and noise), then
quantizes it at w8a8 with every combination of weight scales (per-tensor, per-channel) and range
setting (minmax, entropy, percentile, mse), and with 8 or 100 calibration samples, through the
quantize stage's onnxruntime engine (`bot.stages.quantize.quantize_with_ort`) and runs each QDQ graph
on the HTP (CPU fallback disabled). Reports cosine and SQNR of the logits against the float model
and top-1 agreement on held-out images. It is a tiny model: the trained zoo (bench/trained/) is the
real judge. Random weights would not do: their layers have no outliers and no per-channel spread.

    .venv/bin/python bench/quant_settings.py [--seed 0] [--steps 150] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot import metrics as M  # noqa: E402
from bot.backends.ort_qnn import _session, session_options  # noqa: E402
from bot.spec.schema import TargetSpec  # noqa: E402
from bot.stages.quantize import QuantSettings, quantize_with_ort  # noqa: E402


def gratings(n: int, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """Oriented sinusoidal gratings: the class is the orientation (0, 45, 90, 135 degrees)."""
    y = rng.randint(0, 4, n)
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    imgs = np.empty((n, 3, 32, 32), np.float32)
    for i, c in enumerate(y):
        th = np.pi * c / 4 + rng.normal(0, 0.1)
        f = rng.uniform(2, 6)
        g = np.sin(2 * np.pi * f * (xx * np.cos(th) + yy * np.sin(th)) + rng.uniform(0, 2 * np.pi))
        colour = rng.uniform(0.2, 1.0, 3)[:, None, None]
        imgs[i] = 0.5 + 0.4 * colour * g[None] + rng.normal(0, 0.15, (3, 32, 32))
    return imgs, y


class Net(nn.Module):
    def __init__(self):
        super().__init__()

        def block(i, o, groups=1, stride=1):
            return [nn.Conv2d(i, o, 3, stride, 1, groups=groups, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

        self.features = nn.Sequential(*block(3, 16, stride=2), *block(16, 16, groups=16), *block(16, 32),
                                      *block(32, 32, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(32, 4)

    def forward(self, x):
        return self.fc(self.features(x))


def train(seed: int, steps: int) -> tuple[nn.Module, float, float]:
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    net = Net()
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    t0 = time.perf_counter()
    for _ in range(steps):
        x, y = gratings(32, rng)
        loss = nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    x, y = gratings(256, np.random.RandomState(seed + 99))
    with torch.no_grad():
        acc = float((net(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
    return net, acc, time.perf_counter() - t0


def measure(seed: int = 0, steps: int = 150, calib_sizes=(8, 100)) -> dict:
    net, acc, secs = train(seed, steps)
    work = Path(tempfile.mkdtemp(prefix="quant-settings-"))
    src = work / "float.onnx"
    torch.onnx.export(net, (torch.zeros(1, 3, 32, 32),), src, input_names=["x"], output_names=["y"],
                      opset_version=17, dynamo=False)
    val, val_y = gratings(32, np.random.RandomState(seed + 7))
    feeds = [{"x": v[None]} for v in val]
    with torch.no_grad():
        ref = net(torch.from_numpy(val)).numpy()
    calib_pool, _ = gratings(max(calib_sizes), np.random.RandomState(seed + 3))
    target = TargetSpec(soc="SM8650")
    rows = []
    for n_cal in calib_sizes:
        calib = [{"x": c[None]} for c in calib_pool[:n_cal]]
        for per_channel in (False, True):
            for method in ("minmax", "entropy", "percentile", "mse"):
                out = work / f"q-{n_cal}-{per_channel}-{method}.onnx"
                t0 = time.perf_counter()
                quantize_with_ort(src, out, work, calib, QuantSettings("w8a8", per_channel, method))
                q_secs = time.perf_counter() - t0
                sess = _session(str(out), session_options(target))
                got = np.concatenate([sess.run(None, f)[0] for f in feeds])
                rows.append({"calibration_samples": n_cal, "weights": "per-channel" if per_channel else "per-tensor",
                             "range": method, "cosine": round(M.cosine(ref, got), 5),
                             "sqnr_db": round(M.sqnr_db(ref, got), 2),
                             "top1_agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
                             "quantize_seconds": round(q_secs, 2)})
    return {"seed": seed, "train_steps": steps, "train_seconds": round(secs, 2), "float_accuracy": acc,
            "float_vs_labels_top1": float((ref.argmax(1) == val_y).mean()), "rows": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    results = [measure(s, a.steps) for s in a.seed]
    for r in results:
        print(f"seed {r['seed']}: trained {r['train_steps']} steps in {r['train_seconds']} s, "
              f"float accuracy {r['float_accuracy']:.3f}")
        print("| calib | weights | range | cosine | SQNR dB | top-1 agree | quantize s |")
        print("|---|---|---|---|---|---|---|")
        for row in r["rows"]:
            print(f"| {row['calibration_samples']} | {row['weights']} | {row['range']} | {row['cosine']} | "
                  f"{row['sqnr_db']} | {row['top1_agreement']:.3f} | {row['quantize_seconds']} |")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
