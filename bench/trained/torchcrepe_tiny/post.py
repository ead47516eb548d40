"""Bin probabilities → pitch in Hz per frame, NaN where the frame is unvoiced.

torchcrepe's `weighted_argmax` decoding (the probability-weighted mean of the cents of the 9 bins
around the peak), without the ±10-cent dither `torchcrepe.convert.bins_to_cents` adds: decoding stays
deterministic, so FP32 and deployed answers differ only by what the network computed. Voiced means a
periodicity (peak probability) of at least 0.21, the threshold torchcrepe's documentation uses."""

from __future__ import annotations

import numpy as np

CENTS = 20.0 * np.arange(360) + 1997.3794084376191
VOICED = 0.21


def answer(outputs: dict[str, np.ndarray]) -> np.ndarray:
    p = np.asarray(outputs["probabilities"], np.float64)
    peak = p.argmax(axis=1)
    hz = np.full(len(p), np.nan)
    for t, b in enumerate(peak):
        lo, hi = max(0, b - 4), min(360, b + 5)
        if p[t, b] >= VOICED:
            cents = float((CENTS[lo:hi] * p[t, lo:hi]).sum() / p[t, lo:hi].sum())
            hz[t] = 10 * 2 ** (cents / 1200)
    return hz
