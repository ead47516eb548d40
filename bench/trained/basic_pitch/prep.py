"""A 22.05 kHz WAV → one basic-pitch window: 43844 samples (padded with zeros), shape [1, 43844, 1], under the
ONNX input's own name."""

from __future__ import annotations

from pathlib import Path

import numpy as np

RATE, WINDOW = 22050, 43844


def preprocess(path: Path) -> dict[str, np.ndarray]:
    import soundfile as sf

    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    assert sr == RATE, f"{path}: expected {RATE} Hz, got {sr}"
    audio = audio.mean(axis=1)[:WINDOW]
    return {"serving_default_input_2:0": np.pad(audio, (0, WINDOW - len(audio)))[None, :, None].astype(np.float32)}
