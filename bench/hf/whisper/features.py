"""Log-mel features of synthesized speech: espeak-ng says a few words (offline, at run time),
sox resamples to 16 kHz, and transformers' own WhisperFeatureExtractor computes the log-mel
features the encoder graph takes ([1, 40 mel bins, 100 frames] = one second)."""

from __future__ import annotations

import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

WORDS = ["yes", "no", "stop the music", "go left", "seven", "hello there"]
MEL, SECONDS, RATE = 40, 1, 16000


def speech(text: str) -> np.ndarray:
    """One second of 16 kHz float audio of `text` (padded or cut)."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, wav = Path(tmp) / "raw.wav", Path(tmp) / "16k.wav"
        subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True)
        subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(wav)], check=True,
                       capture_output=True)
        with wave.open(str(wav)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    audio = pcm.astype(np.float32) / 32768.0
    return np.pad(audio, (0, max(0, RATE * SECONDS - len(audio))))[: RATE * SECONDS]


def log_mel(n: int) -> list[np.ndarray]:
    from transformers import WhisperFeatureExtractor  # the model's own front end, on the host

    fe = WhisperFeatureExtractor(feature_size=MEL, sampling_rate=RATE, chunk_length=SECONDS)
    return [fe(speech(WORDS[k % len(WORDS)]), sampling_rate=RATE, return_tensors="np").input_features
            for k in range(n)]
