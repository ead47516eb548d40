"""The validate stage's one call into the task checks (kept out of validate.py's tensor logic)."""

from __future__ import annotations

import json
from pathlib import Path

from bot.records import Check
from bot.store import write_json


def validate_task(ctx, golden: list[dict], outputs: list[dict], work: Path) -> tuple[dict | None, list[Check], list[str]]:
    """(task metrics for metrics.json, checks, failing metric names); (None, [], []) without `task:`.

    Writes `answers.json` (both answers per validation sample) into the stage's folder."""
    from bot.task import answers_json, check  # here, not above: bot.task reaches back into bot.stages

    task = ctx.spec.task
    if task is None:
        return None, [], []
    data = json.loads(ctx.artifact("load", "data").read_text()) if "data" in ctx.results["load"].artifacts else {}
    names = data.get("validation") or [f"sample {i}" for i in range(len(golden))]
    ctx.say(f"task: {len(task.metrics)} metric(s) on {len(golden)} validation sample(s)")
    outcome = check(task, ctx.model_dir, golden, outputs, data.get("labels"))
    write_json(work / "answers.json", answers_json(outcome, names))
    checks = []
    for r in outcome.results:
        for f in r.figures:
            if f.passed is None:
                continue
            value = f.deployed if f.judged == "deployed" else (None if f.delta is None else -f.delta)
            what = f"task {r.metric}: {f.name}" + (" (drop)" if f.judged == "drop" else "")
            checks.append(Check(what, bool(f.passed), _r(value), f.threshold,
                                detail=_disagree(r.disagree, names) if not f.passed else ""))
    metrics = {"samples": len(golden), "postprocess": task.postprocess, "labelled": data.get("labels") is not None,
               "metrics": [dict(r.to_dict(), disagree=[names[i] for i in r.disagree][:20], disagree_count=len(r.disagree))
                           for r in outcome.results]}
    return metrics, checks, outcome.failing


def _disagree(idx: list[int], names: list[str]) -> str:
    if not idx:
        return ""
    shown = ", ".join(names[i] for i in idx[:10])
    return f"{len(idx)} sample(s) differ from FP32: {shown}{' …' if len(idx) > 10 else ''}"


def _r(v):
    return round(v, 6) if isinstance(v, float) else v


def task_files(spec) -> list[str]:
    """Files of the model folder the task checks run: postprocess and custom metrics."""
    if spec.task is None:
        return []
    refs = [spec.task.postprocess] + [getattr(m, "function", None) for m in spec.task.metrics]
    return sorted({r.split(":")[0] for r in refs if r})
