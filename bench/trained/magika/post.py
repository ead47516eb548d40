"""Scores → the content-type label magika would print (its config's label space)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

LABELS = json.loads((Path(__file__).resolve().parent / "weights/config.min.json").read_text())["target_labels_space"]


def answer(outputs: dict[str, np.ndarray]) -> str:
    return LABELS[int(np.argmax(outputs["target_label"].reshape(-1)))]
