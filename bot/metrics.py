"""Numerical agreement between a deployed model's outputs and the FP32 golden ones.

All metrics take (reference, candidate) and are computed in float64 over the flattened arrays.
A collapsed output (all zeros, or constant) gives cosine NaN; callers treat NaN as failing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def _flat(a) -> np.ndarray:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    return np.asarray(a, dtype=np.float64).ravel()


def cosine(ref, out) -> float:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    r, o = _flat(ref), _flat(out)
    denom = np.linalg.norm(r) * np.linalg.norm(o)
    return float(np.dot(r, o) / denom) if denom > 0 else float("nan")


def sqnr_db(ref, out) -> float:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    r, o = _flat(ref), _flat(out)
    noise = np.sum((r - o) ** 2)
    signal = np.sum(r**2)
    if noise == 0:
        return float("inf")
    return float(10 * math.log10(signal / noise)) if signal > 0 else float("-inf")


def psnr_db(ref, out, peak: float | None = None) -> float:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    r, o = _flat(ref), _flat(out)
    mse = np.mean((r - o) ** 2)
    peak = peak if peak is not None else float(np.max(np.abs(r))) or 1.0
    return float("inf") if mse == 0 else float(10 * math.log10(peak**2 / mse))


def max_abs(ref, out) -> float:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    return float(np.max(np.abs(_flat(ref) - _flat(out)))) if np.size(ref) else 0.0


def topk_agreement(ref, out, k: int) -> float:
    """Share of samples whose top-k class sets overlap on the reference's top-1 (last axis = classes)."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    r = np.asarray(ref, dtype=np.float64)
    o = np.asarray(out, dtype=np.float64)
    r2, o2 = r.reshape(-1, r.shape[-1]), o.reshape(-1, o.shape[-1])
    top1 = np.argmax(r2, axis=-1)
    topk = np.argsort(-o2, axis=-1)[:, :k]
    return float(np.mean([t in row for t, row in zip(top1, topk)]))


def summary(ref, out) -> dict[str, float]:
    return {"cosine": cosine(ref, out), "sqnr_db": sqnr_db(ref, out), "psnr_db": psnr_db(ref, out),
            "max_abs": max_abs(ref, out)}


def concat(samples: list[np.ndarray]) -> np.ndarray:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    return np.concatenate([np.asarray(s).ravel() for s in samples]) if samples else np.zeros(0)


# -- per-sample verdicts -------------------------------------------------------------------------
# A threshold is a promise about every input, not about their average: a pooled cosine over
# several samples can pass while one of them fails (a voice-activity frame crossing its decision
# threshold hid in a pooled 0.9915). So each metric is computed per sample and the verdict is the
# worst sample's, with the pooled figure kept beside it.

HIGHER_IS_BETTER = {"cosine": True, "sqnr_db": True, "psnr_db": True, "max_abs": False}


def undefined_cosine(ref, out) -> str:
    """Why a cosine is undefined (a zero vector has no direction), or '' when it is defined."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    if not np.any(_flat(out)):
        return "deployed output is all zeros (collapsed)"
    if not np.any(_flat(ref)):
        return "reference output is all zeros"
    return ""


def per_sample(refs: list, outs: list) -> list[dict[str, float]]:
    return [summary(r, o) for r, o in zip(refs, outs)]


def worst_index(values: list[float], higher_is_better: bool = True) -> int:
    """Index of the worst value; an undefined (NaN) value is worse than any number."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return i
    return int(np.argmin(values) if higher_is_better else np.argmax(values))
