"""The figures a nightly compares, in one shape for the accepted manifest and for tonight's re-check.

    {"stages":    {"compat": True, "compile": True, "validate": True},   # what ran, passed or not
     "failures":  {"compile": "QNN graph preparation failed"},           # why a stage failed
     "outputs":   {"logits": {"cosine": 0.99997, "sqnr_db": 41.4, ...}},
     "checks":    {"logits cosine": True, ...},                          # the definition's thresholds
     "placement": {"total": 21, "htp": 21},
     "latency_ms": 40.4,
     "integrity": True,                                                  # artifacts match their sha256
     "versions":  {"onnxruntime-qnn": "2.7.0", ...}}

Only the stages a nightly re-runs (compat, compile, validate) are kept: the earlier ones are the
accepted inputs, not something tonight's toolchain can change.
"""

from __future__ import annotations

from bot.manifest import Manifest

RECHECKED = ("compat", "compile", "validate")


def _numeric(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def placement_of(metrics: dict) -> dict | None:
    """Compat metrics → {"total", "htp"}; None when the stage recorded no counts."""
    total = (metrics or {}).get("total_nodes")
    if not _numeric(total):
        return None
    return {"total": total, "htp": total - int(metrics.get("fallback_nodes") or 0)}


def validate_figures(metrics: dict, checks: list[dict]) -> dict:
    """Validate metrics and checks → outputs, thresholded checks, latency."""
    metrics = metrics or {}
    return {"outputs": {k: dict(v) for k, v in (metrics.get("outputs") or {}).items() if isinstance(v, dict)},
            "checks": {c["name"]: bool(c.get("passed")) for c in checks or [] if _numeric(c.get("threshold"))},
            "latency_ms": metrics.get("latency_ms_median")}


def empty() -> dict:
    return {"stages": {}, "failures": {}, "outputs": {}, "checks": {}, "placement": None, "latency_ms": None,
            "integrity": None, "versions": {}}


def from_manifest(manifest: dict | Manifest) -> dict:
    """The accepted figures of a single-graph deployment's manifest (or of a part's own, in its folder)."""
    m, f = Manifest.parse(manifest), empty()
    f["versions"] = dict(m.versions)
    f["integrity"] = True if m.artifacts else None  # accepted = matched when committed
    for s in m.stages or []:
        if s.stage not in RECHECKED:
            continue
        f["stages"][s.stage] = s.passed
        if s.failure:
            f["failures"][s.stage] = s.failure.get("message", "")
        if s.stage == "compat":
            f["placement"] = placement_of(s.metrics)
        if s.stage == "validate":
            f.update(validate_figures(s.metrics, s.checks))
    return f


def value_at(figures: dict, path: tuple[str, ...]):
    """The value at a concrete path (keys, never split on dots: output names may contain them)."""
    cur = figures
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur
