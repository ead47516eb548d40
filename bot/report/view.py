"""Turn a manifest into the plain values the templates show.

Templates stay dumb (loops and cells); every decision about what a number means — which way a
threshold points, whether a repair counts, what "needs a human" is — lives here, once, so the PR
body, the HTML report and the nightly summary never disagree.
"""

from __future__ import annotations

from typing import Any

STAGE_WHY = {
    "load": "build the module, make sample inputs and record golden FP32 outputs",
    "export": "PyTorch → ONNX, checked against the golden outputs on the CPU",
    "optimize": "static shapes and simplification so the backend sees a fixed graph",
    "compat": "ask the backend which nodes it accepts before spending time on quantization",
    "quantize": "calibrate and write the QDQ model the backend runs in integer precision",
    "compile": "prepare the QNN context binary the device loads",
    "validate": "run on the target and compare with the golden outputs against the thresholds",
    "package": "write the runtime interface and a run script beside the binary",
}

LABEL_BOT, LABEL_REPAIRED, LABEL_HUMAN = "aipc", "aipc:repaired", "aipc:needs-human"


def needs_human(m: dict) -> bool:
    return m.get("status") == "failed" or (m.get("agent") or {}).get("outcome") == "needs-human"


def repaired(m: dict) -> bool:
    return any(r.get("kept") for r in m.get("repairs") or [])


def labels(m: dict) -> list[str]:
    out = [LABEL_BOT]
    if repaired(m):
        out.append(LABEL_REPAIRED)
    if needs_human(m):
        out.append(LABEL_HUMAN)
    return out


def fmt(v: Any, digits: int = 6) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    if isinstance(v, (list, tuple)):
        return "×".join(str(x) for x in v) if all(isinstance(x, int) for x in v) else ", ".join(fmt(x) for x in v)
    if isinstance(v, dict):
        return "; ".join(f"{k}: {fmt(x)}" for k, x in v.items())
    return str(v)


def direction(check_name: str) -> str:
    """Thresholds are minima except the error bounds (max-abs and friends)."""
    n = check_name.lower()
    return "≤" if ("max-abs" in n or "max_abs" in n or "error" in n or n.endswith(" max")) else "≥"


def stage_status(s: dict) -> str:
    """Cached or not is how this run got the result, not the result: reports ignore it, so a
    re-run that changed nothing renders the same bytes and makes no commit or PR edit."""
    return "passed" if s.get("passed") else "failed"


def stage_figure(s: dict) -> str:
    """The one number a reviewer wants per stage."""
    m, name = s.get("metrics") or {}, s.get("stage")
    if s.get("failure"):
        return s["failure"].get("message", "")[:120]
    if name == "validate" and "outputs" in m:
        parts = [f"{o}: cosine {fmt(v.get('cosine'))}" for o, v in m["outputs"].items()]
        if m.get("latency_ms_median") is not None:
            parts.append(f"{fmt(m['latency_ms_median'], 4)} ms")
        return "; ".join(parts)
    if name == "compat" and "total_nodes" in m:
        return f"{m['total_nodes'] - m.get('fallback_nodes', 0)}/{m['total_nodes']} nodes on the backend"
    if name == "compile" and "binary_bytes" in m:
        return f"{m['binary_bytes'] / 1024:.0f} KiB context binary, HTP v{m.get('htp_arch')} ({m.get('soc')})"
    if name == "quantize" and "precision" in m:
        return f"{m['precision']}, {m.get('quantized_tensors', 0)} quantized tensors"
    if name == "optimize" and "nodes_after" in m:
        return f"{m['nodes_before']} → {m['nodes_after']} nodes"
    if name == "load" and "samples" in m:
        return f"{m['samples']} samples, {m.get('calibration_samples', 0)} calibration samples"
    if name == "export" and "opset" in m:
        return f"{m.get('exporter', '')} opset {m['opset']}, {m.get('nodes', '?')} nodes"
    return ""


def _metric_rows(m: dict) -> list[dict]:
    val = next((s for s in m.get("stages", []) if s.get("stage") == "validate"), None)
    rows = []
    for c in (val or {}).get("checks", []):
        if not isinstance(c.get("threshold"), (int, float)) or isinstance(c.get("threshold"), bool):
            continue
        rows.append({"name": c["name"], "value": fmt(c.get("value")), "op": direction(c["name"]),
                     "threshold": fmt(c.get("threshold")), "passed": bool(c.get("passed"))})
    return rows


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix or "value": d}
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(_flat(v, key) if isinstance(v, dict) else {key: v})
    return out


def _repair_rows(m: dict) -> list[dict]:
    rows = []
    for r in m.get("repairs") or []:
        before, after = _flat(r.get("before") or {}), _flat(r.get("after") or {})
        keys = list(dict.fromkeys([*before, *after]))
        rows.append({
            "n": r.get("n"), "repair": r.get("repair", "?"), "level": r.get("level", "?"),
            "reason": r.get("reason", ""), "kept": bool(r.get("kept")), "seconds": r.get("seconds"),
            "diff": r.get("diff") or "", "patch": patch_name(r),
            "changes": [{"key": k, "before": fmt(before.get(k)), "after": fmt(after.get(k))} for k in keys],
        })
    return rows


def patch_name(r: dict) -> str:
    n = r.get("n") or 0
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in str(r.get("repair", "repair")))
    return f"{int(n):02d}-{r.get('level', 'unknown')}-{safe}.patch"


def _llm(m: dict) -> dict | None:
    llm = m.get("llm")
    if not llm:
        return None
    calls = llm.get("calls")
    if calls is None and isinstance(llm.get("steps"), list):
        calls = len(llm["steps"])
    cost = next((llm[k] for k in ("cost_usd", "usd", "cost") if k in llm), None)
    extra = {k: fmt(v) for k, v in llm.items()
             if k not in ("calls", "cost_usd", "usd", "cost", "steps") and not isinstance(v, (list, dict))}
    return {"calls": calls if calls is not None else "—", "cost": f"{cost:.4f}" if isinstance(cost, (int, float)) else "—",
            "extra": extra}


def _failure(m: dict) -> dict | None:
    bad = next((s for s in m.get("stages", []) if not s.get("passed")), None)
    if not bad or not bad.get("failure"):
        return None
    f = bad["failure"]
    return {"stage": bad["stage"], "kind": f.get("kind", ""), "message": f.get("message", ""),
            "nodes": f.get("nodes", [])[:50], "log": f.get("log", "")}


def _localization(m: dict) -> dict | None:
    loc = m.get("localization")
    if not loc or not loc.get("layers"):
        return None
    return {"first_bad_layer": loc.get("first_bad_layer"), "count": len(loc["layers"]),
            "worst": sorted(loc["layers"], key=lambda x: x.get("cosine") if x.get("cosine") is not None else 2)[:5]}


def storage_rows(m: dict) -> list[dict]:
    files = (m.get("storage") or {}).get("files") or {}
    return [{"path": p, **meta} for p, meta in files.items() if meta.get("where") != "git"]


def build(m: dict) -> dict:
    stages = m.get("stages", [])
    ran = {s.get("stage") for s in stages}
    not_run = [s for s in m.get("workflow", []) if s not in ran]
    return {
        "model": m.get("model", "?"),
        "status": m.get("status", "?"),
        "ok": m.get("status") == "deployed",
        "target": m.get("target") or {},
        "backend": m.get("backend", ""),
        "versions": m.get("versions") or {},
        "seconds_total": sum(float(s.get("seconds") or 0) for s in stages),
        "stages": [{"name": s.get("stage"), "status": stage_status(s), "passed": bool(s.get("passed")),
                    "cached": bool(s.get("cached")), "seconds": float(s.get("seconds") or 0),
                    "figure": stage_figure(s)} for s in stages],
        "not_run": not_run,
        "metrics": _metric_rows(m),
        "outputs": next((s.get("metrics", {}).get("outputs", {}) for s in stages
                         if s.get("stage") == "validate"), {}),
        "latency_ms": next((s.get("metrics", {}).get("latency_ms_median") for s in stages
                            if s.get("stage") == "validate"), None),
        "repairs": _repair_rows(m),
        "llm": _llm(m),
        "agent": m.get("agent") or {},
        "failure": _failure(m),
        "localization": _localization(m),
        "storage": storage_rows(m),
        "labels": labels(m),
        "needs_human": needs_human(m),
        "repaired": repaired(m),
    }
