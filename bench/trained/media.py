"""Realistic inputs made offline for the trained zoo: the sample photos scikit-image and matplotlib
ship, speech from espeak-ng, tones and melodies from sox, text rendered by PIL.

Shared by the definitions' `make_data.py` (each imports it from the folder above its own). Nothing
here downloads anything; every random choice comes from the caller's seed.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

# Photos that ship inside the scikit-image wheel (no pooch download) and matplotlib's sample data.
PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "grace_hopper", "camera", "page",
          "coins", "horse", "hubble_deep_field", "immunohistochemistry", "retina", "brick", "gravel", "grass",
          "colorwheel", "logo", "cell", "moon", "clock", "text"]


def photo(name: str) -> np.ndarray:
    """An RGB uint8 [H, W, 3] sample photo by name."""
    if name == "grace_hopper":
        from matplotlib import cbook
        from PIL import Image

        with cbook.get_sample_data("grace_hopper.jpg") as f:
            return np.asarray(Image.open(f).convert("RGB"))
    import skimage.data as sd

    img = getattr(sd, name)()
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.dtype != np.uint8:
        img = (255 * (img - img.min()) / max(float(img.max() - img.min()), 1e-9)).astype(np.uint8)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def save_png(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def need(tool: str) -> str:
    exe = shutil.which(tool)
    if not exe:
        raise RuntimeError(f"{tool} is not installed: `apt-get install -y espeak-ng sox fonts-wqy-microhei` "
                           "(bench/setup_trained.sh does it)")
    return exe


def sox(*args: str) -> None:
    subprocess.run([need("sox"), *map(str, args)], check=True, capture_output=True)


def speech(text: str, voice: str, out: Path, rate: int = 16000, speed: int = 150, pitch: int = 50) -> Path:
    """espeak-ng speech as a mono WAV at `rate`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run([need("espeak-ng"), "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text],
                       check=True, capture_output=True)
        sox(raw, "-r", rate, "-c", 1, "-b", 16, out)
    return out


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.mean(axis=1), sr


def write_wav(path: Path, audio: np.ndarray, rate: int) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(audio, -1, 1).astype(np.float32), rate, subtype="PCM_16")
    return path


def melody(notes: list[str], out: Path, rate: int, note_seconds: float = 0.3, voice: str = "pluck") -> Path:
    """A melody of sox-synthesised notes (e.g. ["A3", "C4"]) played one after the other."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        for k, n in enumerate(notes):
            p = Path(tmp) / f"{k:03d}.wav"
            sox("-n", "-r", rate, "-c", 1, "-b", 16, p, "synth", note_seconds, voice, n, "gain", "-6")
            parts.append(p)
        sox(*parts, out)
    return out


def note_hz(note: str) -> float:
    """Scientific pitch name (A4 = 440 Hz) to Hz."""
    names = {"C": -9, "D": -7, "E": -5, "F": -4, "G": -2, "A": 0, "B": 2}
    k = names[note[0]] + (1 if "#" in note else -1 if note[1] == "b" else 0)
    octave = int(note.lstrip("ABCDEFG#b"))
    return 440.0 * 2 ** ((k + 12 * (octave - 4)) / 12)


def clean(folder: Path, *subdirs: str) -> None:
    for s in subdirs:
        shutil.rmtree(folder / s, ignore_errors=True)
        (folder / s).mkdir(parents=True, exist_ok=True)
