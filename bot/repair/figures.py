"""What one run of the stages bought, for the report's precision × technique table: the
precision and quantization technique deployed, the task metrics (what a user judges the run by),
latency on the backend, context-binary size."""

from __future__ import annotations


def step_figures(outcome) -> dict:
    out = {}
    q, c, v = outcome.result("quantize"), outcome.result("compile"), outcome.result("validate")
    if q is not None and q.metrics.get("technique"):
        out["precision"] = q.metrics.get("precision")
        out["technique"] = q.metrics["technique"]
    if c is not None and c.metrics.get("binary_bytes") is not None:
        out["binary_bytes"] = c.metrics["binary_bytes"]
    task = (v.metrics.get("task") or {}).get("metrics") if v is not None else None
    if task:  # each metric's first figure: agreement with FP32 (labels, where given, come after it)
        out["task"] = {r["metric"]: r["figures"][0].get("deployed") for r in task if r.get("figures")}
    if v is not None and v.metrics.get("latency_ms_median") is not None:
        out["latency_ms"] = v.metrics["latency_ms_median"]
    return out
