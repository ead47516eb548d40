"""ONet outputs → the cascade's answer for a candidate: P(face) (kept as a face at 0.7, facenet-pytorch's
ONet threshold) and the five landmarks in units of the candidate box."""

from __future__ import annotations

import numpy as np


def answer(outputs: dict[str, np.ndarray]) -> dict:
    return {"face": np.asarray(outputs["prob"], np.float32).reshape(-1)[1:2],
            "landmarks": np.asarray(outputs["landmarks"], np.float32).reshape(-1)}
