"""A 16 kHz speech WAV → one partial utterance: Resemblyzer's 40-band mel spectrogram
(`resemblyzer.audio.wav_to_mel_spectrogram`, volume normalised to −30 dBFS as `preprocess_wav` does),
its first 160 frames (1.6 s)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model import stand_ins


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
