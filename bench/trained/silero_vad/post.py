"""P(speech) for the step; the decision at 0.5 is silero-vad's default threshold."""

from __future__ import annotations

import numpy as np


def answer(outputs: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(outputs["prob"], np.float32).reshape(-1)
