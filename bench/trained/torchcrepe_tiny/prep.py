"""A 16 kHz WAV clip → 16 CREPE frames (1024 samples, hop 10 ms), each mean-centred and scaled to unit
standard deviation as `torchcrepe.preprocess` does."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FRAMES, WINDOW, HOP = 16, 1024, 160


def frames(audio: np.ndarray) -> np.ndarray:
    need = WINDOW + (FRAMES - 1) * HOP
    audio = np.pad(audio, (0, max(0, need - len(audio))))
    f = np.stack([audio[k * HOP:k * HOP + WINDOW] for k in range(FRAMES)]).astype(np.float64)
    f -= f.mean(axis=1, keepdims=True)
    f /= np.maximum(1e-10, f.std(axis=1, ddof=1, keepdims=True))  # torch.std is the unbiased estimate
    return f.astype(np.float32)


def preprocess(path: Path) -> dict[str, np.ndarray]:
    import soundfile as sf

    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    assert sr == 16000, f"{path}: expected 16 kHz, got {sr}"
    return {"frames": frames(audio.mean(axis=1))}
