"""A 16 kHz speech WAV → one partial utterance: Resemblyzer's 40-band mel spectrogram
(`resemblyzer.audio.wav_to_mel_spectrogram`, volume normalised to −30 dBFS as `preprocess_wav` does),
its first 160 frames (1.6 s)."""

from __future__ import annotations

from pathlib import Path

import numpy as np



def stand_ins() -> None:
    """webrtcvad stand-in (imported by resemblyzer.audio, unused here); not imported from model.py:
    the package ships prep.py alone."""
    import importlib.util
    import sys
    import types

    if "webrtcvad" not in sys.modules and importlib.util.find_spec("webrtcvad") is None:
        sys.modules["webrtcvad"] = types.ModuleType("webrtcvad")


def preprocess(path: Path) -> dict[str, np.ndarray]:
    import soundfile as sf

    stand_ins()
    from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram

    wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    assert sr == 16000, f"{path}: expected 16 kHz, got {sr}"
    wav = normalize_volume(wav.mean(axis=1), -30, increase_only=True)
    mel = wav_to_mel_spectrogram(wav)[:160]
    mel = np.pad(mel, ((0, 160 - len(mel)), (0, 0)))
    return {"mel": mel[None].astype(np.float32)}
