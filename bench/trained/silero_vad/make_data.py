"""Speech (espeak-ng, several voices) with silences and low noise between the sentences (sox), cut into
the 512-sample steps silero-vad reads at 16 kHz. The state each step sees is the one the FP32 network
carried to it over the stream, so every file is one realistic step: {x, state} in an .npz."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import media  # noqa: E402
from bot.model_code import load_callable  # noqa: E402

# the sibling model.py by path: a bare `from model import` would get another definition's model module
# when one process loads several (bench/trained_quant_compare.py --only all)
build = load_callable(Path(__file__).resolve().parent, "model.py:build", "data.make")

RATE, STEP, CONTEXT = 16000, 512, 64
VAL_EVERY = 4  # one validation step in 4 (each still carries the state of every step before it)
SENTENCES = ["Turn left at the next corner and stop.", "The weather today is cold and windy.",
             "Please call me back after lunch.", "Seven boxes of red apples arrived."]


def stream(folder: Path, voices: list[str], rng: np.random.Generator) -> np.ndarray:
    parts = []
    for k, v in enumerate(voices):
        parts.append(np.zeros(int(RATE * rng.uniform(0.6, 1.2)), np.float32))
        wav = media.speech(SENTENCES[k % len(SENTENCES)], v, folder / "data/tmp.wav", RATE, speed=int(rng.integers(130, 170)))
        parts.append(media.read_wav(wav)[0])
    parts.append(np.zeros(int(RATE * 0.8), np.float32))
    audio = np.concatenate(parts)
    (folder / "data/tmp.wav").unlink()
    return (audio + rng.normal(0, 0.003, audio.shape)).astype(np.float32)  # a quiet room, not digital zero


def steps(audio: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Each step's input as silero-vad's own wrapper builds it, with the FP32 state carried along."""
    net = build()
    state = torch.zeros(2, 1, 128)
    context = torch.zeros(1, CONTEXT)
    out = []
    for i in range(0, len(audio) - STEP + 1, STEP):
        chunk = torch.from_numpy(audio[i:i + STEP])[None]
        x = torch.cat([context, chunk], dim=1)
        out.append({"x": x.numpy().copy(), "state": state.numpy().copy()})
        with torch.no_grad():
            _, state = net(x, state)
        context = x[:, -CONTEXT:]
    return out


def make(folder: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    media.clean(folder, "data/val", "data/calib")
    for split, voices in (("val", ["en-us", "en-gb+f2"]), ("calib", ["en-gb", "en-us+f3"])):
        audio = stream(folder, voices, rng)
        media.write_wav(folder / f"data/{split}.wav", audio, RATE)
        for k, s in enumerate(steps(audio)):
            if split == "calib" or k % VAL_EVERY == 0:  # every step calibrates; validation keeps the simulator's time bounded
                np.savez(folder / f"data/{split}/{k:04d}.npz", **s)


if __name__ == "__main__":
    make(Path(__file__).resolve().parent, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
