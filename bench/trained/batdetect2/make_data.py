"""Synthetic echolocation passes at 256 kHz: frequency-modulated sweeps (75 → 45 kHz and similar, 2–6 ms,
with a harmonic) at a bat's call rate, over background noise; some clips have only noise. Each
clip is 0.512 s (512 spectrogram columns after batdetect2's resize)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import media  # noqa: E402

RATE, SECONDS = 256000, 0.512


def call(rng: np.random.Generator) -> np.ndarray:
    dur = float(rng.uniform(0.002, 0.006))
    f0, f1 = float(rng.uniform(60e3, 85e3)), float(rng.uniform(35e3, 50e3))
    t = np.arange(int(dur * RATE)) / RATE
    k = (f1 / f0) ** (1 / dur)  # exponential sweep, like an FM bat's
    phase = 2 * np.pi * f0 * (k ** t - 1) / np.log(k)
    env = np.hanning(len(t))
    return env * (np.sin(phase) + 0.2 * np.sin(2 * phase))


def clip(rng: np.random.Generator, calls: bool) -> np.ndarray:
    audio = rng.normal(0, 0.01, int(RATE * SECONDS))
    if calls:
        amp, pos = float(rng.uniform(0.1, 0.5)), float(rng.uniform(0.01, 0.08))
        while pos < SECONDS - 0.01:
            c = call(rng) * amp
            i = int(pos * RATE)
            audio[i:i + len(c)] += c[: len(audio) - i]
            pos += float(rng.uniform(0.06, 0.12))  # 8–16 calls per second
    return audio.astype(np.float32)


def make(folder: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    media.clean(folder, "data/val", "data/calib")
    for split, n in (("val", 4), ("calib", 8)):
        for k in range(n):
            media.write_wav(folder / f"data/{split}/{k:02d}.wav", clip(rng, calls=k % 4 != 3) * 0.9, RATE)


if __name__ == "__main__":
    make(Path(__file__).resolve().parent, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
