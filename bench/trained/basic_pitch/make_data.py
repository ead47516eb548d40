"""Melodies for basic-pitch at 22.05 kHz: sox plucked notes and sine tones, 2 s windows (43844
samples, basic-pitch's window) of a seeded walk through two octaves; `data/labels.json` holds the
MIDI pitches played in each window. Also copies basic-pitch's ONNX (icassp_2022) into `weights/` and
cuts it in two at the normalized log-CQT (`prep.split`): `weights/net.onnx` is what is deployed, the
CQT front-end runs on the host in prep.py (why: the definition's comment in aipc.yaml)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import media  # noqa: E402

RATE, WINDOW = 22050, 43844
NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def name(midi: int) -> str:
    return f"{NAMES[midi % 12]}{midi // 12 - 1}"


def make(folder: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    media.clean(folder, "data/val", "data/calib", "weights")
    src = Path(importlib.util.find_spec("basic_pitch").submodule_search_locations[0]) / "saved_models/icassp_2022"
    shutil.copy(src / "nmp.onnx", folder / "weights/nmp.onnx")
    sys.path.insert(0, str(folder))
    import prep  # noqa: E402 — this definition's preprocess holds the cut (it runs the front-end)

    prep.split(folder / "weights/nmp.onnx", None, folder / "weights/net.onnx")
    labels = {}
    for split, n in (("val", 4), ("calib", 8)):
        for k in range(n):
            notes = [int(m) for m in 55 + np.cumsum(rng.integers(-3, 4, size=5)).clip(-7, 17)]  # 5 notes of 0.4 s
            path = folder / f"data/{split}/{k:02d}.wav"
            media.melody([name(m) for m in notes], path, RATE, note_seconds=0.4,
                         voice="pluck" if k % 2 == 0 else "sine")
            audio = media.read_wav(path)[0][:WINDOW]
            media.write_wav(path, np.pad(audio, (0, WINDOW - len(audio))), RATE)
            if split == "val":
                labels[path.name] = sorted(set(notes))
    (folder / "data/labels.json").write_text(json.dumps(labels, indent=1, sort_keys=True))


if __name__ == "__main__":
    make(Path(__file__).resolve().parent, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
