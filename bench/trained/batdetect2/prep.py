"""A 256 kHz WAV → batdetect2's input spectrogram, by batdetect2's own
`detector_utils.compute_spectrogram` (2 ms windows, 75 % overlap, 10–120 kHz, PCEN, mean
denoising, resized by 0.5): [1, 1, 128, 512] for a 0.512 s clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def checkpoint() -> dict:
    """batdetect2's checkpoint (its params: spectrogram and post-processing settings), read here and not
    imported from model.py: the package ships prep.py and post.py alone."""
    import importlib.util

    import torch

    root = Path(importlib.util.find_spec("batdetect2").submodule_search_locations[0])
    return torch.load(root / "models/Net2DFast_UK_same.pth.tar", map_location="cpu", weights_only=True)


def preprocess(path: Path) -> dict[str, np.ndarray]:
    import soundfile as sf
    import torch
    from batdetect2.utils.detector_utils import compute_spectrogram

    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    _, spec, _ = compute_spectrogram(audio.mean(axis=1), sr, checkpoint()["params"], torch.device("cpu"))
    return {"spec": spec.numpy().astype(np.float32)}
