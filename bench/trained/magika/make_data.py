"""Real files of this machine, of the kinds magika is for: Python, C headers, shell scripts, JSON, XML,
HTML, PNG, JPEG, PDF, gzip, ELF binaries, plus a zip and WAV files made here. A seeded choice of each
kind, split into calibration and validation; `data/labels.json` says what each file really is.
Also copies magika's ONNX model and its config out of the installed wheel into `weights/`."""

from __future__ import annotations

import glob
import importlib.util
import json
import shutil
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import media  # noqa: E402

STDLIB = sysconfig.get_paths()["stdlib"]
PURELIB = sysconfig.get_paths()["purelib"]
# kind → (magika label, candidate paths)
KINDS = {
    "py": ("python", f"{STDLIB}/*.py"),
    "h": ("c", "/usr/include/*.h"),
    "sh": ("shell", "/usr/bin/*"),  # filtered to '#!/bin/sh' / bash scripts below
    "json": ("json", f"{PURELIB}/**/*.json"),
    "xml": ("xml", "/usr/share/**/*.xml"),
    "html": ("html", "/usr/share/doc/**/*.html"),
    "png": ("png", f"{PURELIB}/**/*.png"),
    "jpg": ("jpeg", f"{PURELIB}/**/*.jpg"),
    "pdf": ("pdf", "/usr/share/doc/**/*.pdf"),
    "gz": ("gzip", "/usr/share/doc/*/changelog*.gz"),
    "elf": ("elf", "/usr/bin/*"),  # filtered to ELF below
}
PER_KIND = 4  # 3 for calibration, 1 for validation (the simulated HTP takes ~19 s per magika inference)


def _is(path: str, kind: str) -> bool:
    try:
        head = Path(path).read_bytes()[:64]
    except OSError:
        return False
    if kind == "sh":
        return head.startswith((b"#!/bin/sh", b"#!/bin/bash", b"#! /bin/sh", b"#!/usr/bin/env bash"))
    if kind == "elf":
        return head.startswith(b"\x7fELF")
    return True


def candidates(kind: str) -> list[str]:
    pattern = KINDS[kind][1]
    found = sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file() and not Path(p).is_symlink())
    found = [p for p in found if 64 <= Path(p).stat().st_size <= 4_000_000]
    return [p for p in found if _is(p, kind)]


def make(folder: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    media.clean(folder, "data/val", "data/calib", "weights")
    root = Path(importlib.util.find_spec("magika").submodule_search_locations[0]) / "models/standard_v3_3"
    for f in ("model.onnx", "config.min.json"):
        shutil.copy(root / f, folder / "weights" / f)
    labels, k = {}, 0

    def put(src: Path, kind: str, label: str, split: str) -> None:
        nonlocal k
        dst = folder / f"data/{split}/{k:03d}_{kind}{src.suffix if kind != 'sh' and kind != 'elf' else ''}"
        shutil.copy(src, dst)
        labels[dst.name] = label
        k += 1

    for kind, (label, _) in KINDS.items():
        found = candidates(kind)
        pick = rng.choice(len(found), size=min(PER_KIND, len(found)), replace=False)
        for j, i in enumerate(pick):
            put(Path(found[i]), kind, label, "val" if j == 0 else "calib")
    # a zip and WAV files made here (none of either need be on a machine)
    made = folder / "data/made"
    made.mkdir(exist_ok=True)
    for j in range(PER_KIND):
        z = made / f"{j}.zip"
        with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in rng.choice(candidates("py"), size=3, replace=False):
                zf.write(p, Path(p).name)
        put(z, "zip", "zip", "val" if j == 0 else "calib")
        w = media.speech(["Hello there.", "The file type is audio.", "One two three four."][j % 3],
                         ["en-us", "en-gb", "en-us+f2"][j % 3], made / f"{j}.wav")
        put(w, "wav", "wav", "val" if j == 0 else "calib")
    shutil.rmtree(made)
    (folder / "data/labels.json").write_text(json.dumps(labels, indent=1, sort_keys=True))


if __name__ == "__main__":
    make(Path(__file__).resolve().parent, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
