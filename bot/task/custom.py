"""A metric the definition brings: `file.py:function(fp32_answers, deployed_answers) -> float`."""

from __future__ import annotations

import math

from bot.spec.schema import CustomMetric
from bot.model_code import call, load_callable
from bot.task.records import Figure, MetricResult


def custom(m: CustomMetric, fp32: list, deployed: list, labels: list | None, folder) -> MetricResult:
    fn = load_callable(folder, m.function, f"task.metrics ({m.label}).function")
    value = call(folder, fn, list(fp32), list(deployed), what=f"the custom metric {m.function}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{m.function} returned {type(value).__name__}, expected a number") from None
    figs = []
    if m.min is not None:
        figs.append(Figure(m.function, value, threshold=m.min))
    if m.max is not None:
        figs.append(Figure(m.function, value, threshold=m.max, op="≤"))
    return MetricResult(m.label, m.kind, figs, len(fp32), note="" if math.isfinite(value) else "not a finite number")
