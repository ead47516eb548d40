"""A numeric error with a unit (pitch in cents, depth in metres): share of elements within a bound."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from bot.spec.schema import ErrorMetric
from bot.task.records import Figure, MetricResult


def errors(m: ErrorMetric, ref, got) -> np.ndarray:
    """|deployed − FP32| per element where FP32 applies (not NaN); cents compare frequencies on a
    log scale, and a deployed value that cannot be compared (≤ 0, NaN) counts as infinitely off."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    r = np.asarray(ref, dtype=np.float64).ravel()
    g = np.asarray(got, dtype=np.float64).ravel()
    if r.shape != g.shape:
        raise ValueError(f"FP32 gives {r.size} values, the deployed model {g.size}")
    ok = ~np.isnan(r)
    r, g = r[ok], g[ok]
    if m.compare == "cents":
        valid = (r > 0) & (g > 0)
        e = np.full(r.shape, np.inf)
        e[valid] = 1200 * np.abs(np.log2(g[valid] / r[valid]))
        return e
    e = np.abs(g - r)
    return np.where(np.isnan(e), np.inf, e)


def error(m: ErrorMetric, fp32: list, deployed: list, labels: list | None, folder) -> MetricResult:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    per = [errors(m, f, d) for f, d in zip(fp32, deployed)]
    e = np.concatenate(per) if per else np.zeros(0)
    unit = f" {m.unit}" if m.unit else ""
    share = float(np.mean(e <= m.max)) if e.size else 1.0
    figs = [Figure(f"share within {m.max:g}{unit} of FP32 ({e.size} values)", share, threshold=m.share_min),
            Figure(f"median error vs FP32{unit}", float(np.percentile(e, 50, method="higher")) if e.size else 0.0, op="≤", unit=m.unit),
            Figure(f"99th percentile error vs FP32{unit}", float(np.percentile(e, 99, method="higher")) if e.size else 0.0, op="≤",
                   unit=m.unit)]
    idx = [i for i, lab in enumerate(labels or []) if lab is not None
           and np.size(np.asarray(lab, dtype=object)) == np.size(np.asarray(fp32[i], dtype=object))]
    if idx:
        def mean_err(ans):
            x = np.concatenate([errors(m, labels[i], ans[i]) for i in idx])
            return float(np.mean(x[np.isfinite(x)])) if np.isfinite(x).any() else float("nan")
        figs.append(Figure(f"mean error vs labels{unit}", mean_err(deployed), fp32=mean_err(fp32), unit=m.unit))
    return MetricResult(m.label, m.kind, figs, len(per), [i for i, x in enumerate(per) if np.any(x > m.max)])
