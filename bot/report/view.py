"""Turn a manifest into the plain values the templates show.

Templates stay dumb (loops and cells); every decision about what a number means — which way a
threshold points, whether a repair counts, what "needs a human" is — lives here, once, so the PR
body, the HTML report and the nightly report never disagree.
"""

from __future__ import annotations

from typing import Any

from bot.manifest import EndToEndCheck, Manifest, PartRow, StageRow
from bot.parts import DeployedPart, parts

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


def all_repairs(m: dict | Manifest) -> list[dict]:
    return [r for p in parts(m) for r in p.repairs]


def needs_human(m: dict | Manifest) -> bool:
    m = Manifest.parse(m)
    return m.status == "failed" or (m.agent or {}).get("outcome") == "needs-human"


def repaired(m: dict | Manifest) -> bool:
    return any(r.get("kept") for r in all_repairs(m))


def labels(m: dict | Manifest) -> list[str]:
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


def stage_status(s: StageRow) -> str:
    """Cached or not is how this run got the result, not the result: reports ignore it, so a
    re-run that changed nothing renders the same bytes and makes no commit or PR edit."""
    return "passed" if s.passed else "failed"


def stage_figure(s: StageRow) -> str:
    """The one number a reviewer wants per stage."""
    m, name = s.metrics, s.stage
    if s.failure:
        return s.failure.get("message", "")[:120]
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
    if name == "load" and "validation_files" in m:
        return (f"{m['samples']} validation, {m.get('calibration_samples', 0)} calibration samples from data files"
                + (f" ({m['labelled_samples']} labelled)" if m.get("labelled_samples") else ""))
    if name == "load" and "samples" in m:
        return f"{m['samples']} samples, {m.get('calibration_samples', 0)} calibration samples"
    if name == "export" and "opset" in m:
        return f"{m.get('exporter', '')} opset {m['opset']}, {m.get('nodes', '?')} nodes"
    return ""


def _numeric(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_rows(checks: list[dict], *, thresholded_only: bool = True) -> list[dict]:
    rows = []
    for c in checks or []:
        if thresholded_only and not _numeric(c.get("threshold")):
            continue
        has = _numeric(c.get("threshold"))
        value = fmt(c.get("value"))
        if str(c.get("detail", "")).startswith("worst:"):  # a per-sample verdict names its sample
            value = f"{value} ({c['detail']})"
        rows.append({"name": c.get("name", "?"), "value": value,
                     "op": direction(c.get("name", "")) if has else "",
                     "threshold": fmt(c.get("threshold")) if has else "—", "passed": bool(c.get("passed"))})
    return rows


TASK_CHECK = "task "  # validate's checks for task metrics; they have a table of their own


def _stage(stages: list[StageRow], name: str) -> StageRow:
    """The manifest row of stage `name`; an empty row (no checks, no metrics) when it did not run."""
    return next((s for s in stages if s.stage == name), None) or StageRow(stage=name)


def _metric_rows(stages: list[StageRow]) -> list[dict]:
    return check_rows([c for c in _stage(stages, "validate").checks if not c.get("name", "").startswith(TASK_CHECK)])


def _bar(f: dict) -> str:
    if f.get("threshold") is None:
        return "—"
    return f"{'drop ' if f.get('judged') == 'drop' else ''}{f.get('op', '≥')} {fmt(f['threshold'])}"


def _signed(v) -> str:
    return "—" if v is None else (f"{v:+.4g}" if isinstance(v, float) else fmt(v))


def task_view(stages: list[StageRow]) -> dict | None:
    """The task metrics as table rows (metric, figure, FP32, deployed, delta, bar, pass), as AI Hub's
    numerics.yaml shows them; None when the definition has no `task:`."""
    task = _stage(stages, "validate").metrics.get("task")
    if not task:
        return None
    rows = []
    for r in task.get("metrics") or []:
        for f in r.get("figures") or []:
            rows.append({"metric": r.get("metric", "?"), "kind": r.get("kind", ""), "figure": f.get("name", ""),
                         "fp32": fmt(f.get("fp32")) if f.get("fp32") is not None else "reference",
                         "deployed": fmt(f.get("deployed")), "delta": _signed(f.get("delta")), "bar": _bar(f),
                         "passed": f.get("passed")})
    return {"rows": rows, "samples": task.get("samples"), "labelled": task.get("labelled"),
            "passed": all(r.get("passed") for r in task.get("metrics") or []),
            "disagree": [{"metric": r.get("metric"), "files": r.get("disagree") or [],
                          "count": r.get("disagree_count", len(r.get("disagree") or []))}
                         for r in task.get("metrics") or [] if r.get("disagree")],
            "notes": [{"metric": r.get("metric"), "note": r["note"]} for r in task.get("metrics") or [] if r.get("note")]}


def data_view(stages: list[StageRow]) -> dict | None:
    """Which data files fed calibration and validation (the load stage's record)."""
    lm = _stage(stages, "load").metrics
    if "validation_files" not in lm:
        return None
    return {"validation": lm.get("validation_files") or [], "calibration": lm.get("calibration_files") or [],
            "validation_samples": lm.get("samples"), "calibration_samples": lm.get("calibration_samples"),
            "labelled": lm.get("labelled_samples", 0), "made": bool(lm.get("data_made"))}


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix or "value": d}
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(_flat(v, key) if isinstance(v, dict) else {key: v})
    return out


def _attempt_name(r: dict) -> str:
    """The repair an attempt ran, with those the CPU screen composed on top of it (one device run)."""
    return " + ".join([r.get("repair", "?"), *(r.get("composed") or [])])


def _repair_rows(repairs: list[dict]) -> list[dict]:
    rows = []
    for r in repairs:
        before, after = _flat(r.get("before") or {}), _flat(r.get("after") or {})
        keys = list(dict.fromkeys([*before, *after]))
        rows.append({
            "n": r.get("n"), "repair": _attempt_name(r), "level": r.get("level", "?"),
            "reason": r.get("reason", ""), "kept": bool(r.get("kept")), "seconds": r.get("seconds"),
            "diff": r.get("diff") or "", "patch": patch_name(r),
            "changes": [{"key": k, "before": fmt(before.get(k)), "after": fmt(after.get(k))} for k in keys],
        })
    return rows


def _worst_cosine(summary: dict):
    vals = [c for c in (summary.get("cosine") or {}).values() if _numeric(c)]
    return min(vals) if vals else None


def _step_rows(reps: list[dict]) -> list[dict]:
    """Precision × technique → tensor and task metrics, latency, binary size: the run as defined, then each repair
    attempt (from the figures the repair loop records; older manifests have none, and no table)."""
    if not reps or not any((r.get("after") or {}).get("technique") for r in reps):
        return []
    runs = [("as defined", "", None, reps[0].get("before") or {})]
    runs += [(f"{r.get('n')}", _attempt_name(r), bool(r.get("kept")), r.get("after") or {}) for r in reps]
    return [{"step": step, "repair": repair, "kept": kept, "technique": d.get("technique") or d.get("precision") or "—",
             "passed": d.get("passed"), "cosine": fmt(_worst_cosine(d)),
             "task": ", ".join(f"{k} {fmt(v)}" for k, v in (d.get("task") or {}).items()) or "—",
             "latency_ms": fmt(d.get("latency_ms"), 4),
             "binary": kib(d["binary_bytes"]) if _numeric(d.get("binary_bytes")) else "—"}
            for step, repair, kept, d in runs]


def patch_name(r: dict) -> str:
    n = r.get("n") or 0
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in str(r.get("repair", "repair")))
    return f"{int(n):02d}-{r.get('level', 'unknown')}-{safe}.patch"


def _llm(llm: dict | None) -> dict | None:
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


def _failure(stages: list[StageRow]) -> dict | None:
    """The first failed stage of the graph at the root."""
    bad = next((s for s in stages if not s.passed), None)
    if not bad or not bad.failure:
        return None
    f = bad.failure
    return {"stage": bad.stage, "noun": "stage ", "kind": f.get("kind", ""), "message": f.get("message", ""),
            "nodes": f.get("nodes", [])[:50], "log": f.get("log", "")}


def _localization(loc: dict | None) -> dict | None:
    if not loc or not loc.get("layers"):
        return None
    return {"first_bad_layer": loc.get("first_bad_layer"), "count": len(loc["layers"]),
            "worst": sorted(loc["layers"], key=lambda x: x.get("cosine") if x.get("cosine") is not None else 2)[:5]}


def storage_rows(m: dict | Manifest) -> list[dict]:
    files = (Manifest.parse(m).storage or {}).get("files") or {}
    return [{"path": p, **meta} for p, meta in files.items() if meta.get("where") != "git"]


def build(m: dict | Manifest) -> dict:
    """One view for every deployment: the stages of a graph deployed into the folder itself, the rows of
    parts deployed into folders of their own, and the end-to-end checks over them (a single graph has
    one part at the root and no end-to-end checks; a `bot.compose` deployment parts in folders)."""
    m = Manifest.parse(m)
    deployed = parts(m)
    root = next((p for p in deployed if p.at_root), None)
    stages = root.stages if root else []
    ran = {s.stage for s in stages}
    rows, e2e = _part_rows(deployed), _e2e_rows(m.e2e)
    target = m.target or m.definition.get("target") or {}
    precisions = sorted({p["precision"] for p in rows if p["precision"]})
    if precisions and precisions != [target.get("precision")]:
        target = dict(target, precision="/".join(precisions))
    return {
        "model": m.model,
        "status": m.status,
        "ok": m.status == "deployed",
        "target": target,
        "backend": m.backend,
        "versions": m.versions,
        # a graph at the root is timed by its stages; parts in folders by the whole run's wall time
        "seconds_total": (sum(float(s.seconds or 0) for s in stages) if root
                          else m.seconds_total),
        "seconds_what": "in stages" if root else "wall time, all parts and checks",
        "per": "stage" if root else "part",  # what one bar of the seconds chart is
        "parts_in_folders": root is None,  # the report shows a table of parts rather than of stages
        # no `cached` here (see `stage_status`): the view is also the key of the rendered texts
        "stages": [{"name": s.stage, "status": stage_status(s), "passed": bool(s.passed),
                    "seconds": float(s.seconds or 0), "figure": stage_figure(s)} for s in stages],
        "not_run": [s for s in m.workflow if s not in ran],
        "metrics": _metric_rows(stages),
        "task": task_view(stages),
        "data": data_view(stages),
        "outputs": _stage(stages, "validate").metrics.get("outputs", {}),
        "latency_ms": _stage(stages, "validate").metrics.get("latency_ms_median"),
        "parts": rows,
        "parts_passed": sum(p["passed"] for p in rows),
        "binary_bytes": sum(p["binary_bytes"] or 0 for p in rows),
        "e2e": e2e,
        "e2e_passed": sum(e["passed"] for e in e2e),
        "sharing": _sharing_rows(m.weight_sharing),
        "part_repairs": [p for p in rows if p["repairs"]],
        "repairs": _repair_rows([r for p in deployed for r in p.repairs]),
        # the before/after figures of the root graph's repair attempts (parts in folders show theirs per part)
        "steps": _step_rows(root.repairs if root else []),
        "llm": _llm_view(m, deployed),
        "agent": m.agent or {},
        "failure": _failure(stages) or _part_failure(rows) or _e2e_failure(e2e),
        "localization": _localization(m.localization),
        "storage": storage_rows(m),
        "labels": labels(m),
        "needs_human": needs_human(m),
        "repaired": repaired(m),
    }


# ---------------------------------------------------------------------- parts in folders of their own

def kib(n) -> str:
    return f"{n / 1024:.0f} KiB" if _numeric(n) else "—"


def part_figure(p: PartRow) -> str:
    """The part's key numbers: worst cosine per output and the median latency, or its failure."""
    if p.failure:
        f = p.failure
        return f"{f.get('stage')}: {f.get('message', '')}"[:160]
    val = p.validate_ or {}
    bits = [f"{o}: cosine {fmt(v.get('cosine'))}" for o, v in (val.get("outputs") or {}).items()]
    if val.get("latency_ms_median") is not None:
        bits.append(f"{fmt(val['latency_ms_median'], 4)} ms")
    return "; ".join(bits)


def _part_rows(deployed: list[DeployedPart]) -> list[dict]:
    """One row per part in a folder of its own, from the top manifest's summary of it."""
    rows = []
    for d in deployed:
        if d.at_root or d.row is None:
            continue
        p, recs = d.row, d.repairs
        n = p.repairs if _numeric(p.repairs) else len(recs)
        rows.append({
            "dir": p.dir or p.graph, "graph": p.graph, "variant": p.variant,
            "status": p.status or ("deployed" if p.passed else "failed"), "passed": bool(p.passed),
            "seconds": float(p.seconds or 0), "precision": p.precision,
            "inputs": "; ".join(f"{k} {fmt(v)}" for k, v in p.inputs.items()),
            "figure": part_figure(p),
            "binary_bytes": sum(b.get("bytes", 0) for b in p.binaries.values()) if p.binaries else None,
            "binaries": p.binaries, "repairs_tried": n, "repairs_kept": sum(bool(r.get("kept")) for r in recs),
            "repairs": _repair_rows(recs), "failure": p.failure,
        })
    return rows


def _e2e_rows(checks: list[EndToEndCheck]) -> list[dict]:
    out = []
    for check in checks:
        e = check.model_extra or {}  # the facts each kind of check measured (sequences, tokens, samples)
        facts = []
        if e.get("sequences") is not None:
            facts.append(f"{fmt(e.get('sequences_equal'))}/{fmt(e.get('sequences'))} sequences identical to PyTorch "
                         f"({fmt(e.get('tokens_per_sequence'))} tokens each)")
        if e.get("seconds_per_token") is not None:
            facts.append(f"{fmt(e['seconds_per_token'] * 1000, 4)} ms per token on the backend")
        if e.get("encoder_seconds"):
            facts.append(f"encoder {fmt(e['encoder_seconds'] * 1000, 4)} ms")
        if e.get("samples") is not None:
            facts.append(f"{e['samples']} samples through the chain")
        failed = [c for c in check.checks if not c.get("passed") and c.get("detail")]
        out.append({"name": check.name, "passed": bool(check.passed), "seconds": check.seconds,
                    "checks": check_rows(check.checks, thresholded_only=False), "facts": facts,
                    "runtime": e.get("runtime"), "detail": "\n".join(c["detail"] for c in failed)})
    return out


def _sharing_rows(sharing: dict[str, dict]) -> list[dict]:
    rows = []
    for graph, r in sharing.items():
        if not r.get("generated"):
            outcome = "shared binary not generated"
        elif r.get("usable"):
            outcome = "shared binary loads and matches the separate binaries"
        elif not r.get("loads"):
            outcome = "shared binary generated but does not load"
        else:
            outcome = "shared binary loads but differs from the separate binaries"
        rows.append({"graph": graph, "variants": ", ".join(r.get("variants") or []), "option": r.get("option", ""),
                     "outcome": outcome, "deployed": r.get("deployed", "—"), "usable": bool(r.get("usable")),
                     "shared": kib(r.get("shared_bytes")), "separate": kib(r.get("separate_bytes")),
                     "error": r.get("error") or ""})
    return rows


def _node(n) -> dict:
    """A part row keeps nodes as "op name: reason" strings."""
    if not isinstance(n, str):
        return n
    op, _, rest = n.partition(" ")
    name, _, reason = rest.partition(": ")
    return {"op": op, "name": name, "reason": reason}


def _part_failure(rows: list[dict]) -> dict | None:
    """The first failed part in a folder, named `<dir> / <stage>`."""
    bad = next((p for p in rows if not p["passed"]), None)
    if bad and bad["failure"]:
        f = bad["failure"]
        nodes = [_node(n) for n in f.get("nodes") or []]
        return {"stage": f"{bad['dir']} / {f.get('stage')}", "noun": "", "kind": f.get("kind", ""),
                "message": f.get("message", ""), "nodes": nodes[:50], "log": ""}
    return None


def _e2e_failure(e2e: list[dict]) -> dict | None:
    e = next((e for e in e2e if not e["passed"]), None)
    if e:
        return {"stage": f"end to end / {e['name']}", "noun": "", "kind": "accuracy",
                "message": "; ".join(f"{c['name']} = {c['value']}" for c in e["checks"] if not c["passed"]),
                "nodes": [], "log": e["detail"]}
    return None


def _llm_view(m: Manifest, deployed: list[DeployedPart]) -> dict | None:
    """The run's LLM usage; with parts in folders, the parts' and the top's usage summed."""
    llms = [p.row.llm for p in deployed if p.row is not None and p.row.llm]
    if not any(not p.at_root for p in deployed):
        return _llm(m.llm)
    if m.llm:
        llms.append(m.llm)
    if not llms:
        return None
    return _llm({"calls": sum(int(x.get("calls") or 0) for x in llms),
                 "usd": sum(float(x.get("usd") or x.get("cost_usd") or 0) for x in llms)})
