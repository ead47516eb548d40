"""CTC greedy decode as rapidocr does: argmax per step, merge repeats, drop the blank (index 0);
index k ≥ 1 is the k-th line of the model's character list, the last index a space."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CHARS = ["<blank>"] + (Path(__file__).resolve().parent / "weights/characters.txt").read_text().split("\n") + [" "]


def answer(outputs: dict[str, np.ndarray]) -> str:
    ids = np.asarray(outputs["softmax_11.tmp_0"])[0].argmax(axis=-1)
    text, prev = [], 0
    for i in ids:
        if i != prev and i != 0:
            text.append(CHARS[int(i)])
        prev = i
    return "".join(text).strip()  # the zero padding right of a short line reads as spaces
