"""The validate stage's one call into the task checks (kept out of validate.py's tensor logic)."""

from __future__ import annotations

import json
from pathlib import Path

from bot import plots
from bot.records import Check
from bot.store import write_json
from bot.task.answers import pick
from bot.task.detections import boxes


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
    plot = render_sample(ctx, outcome, names, work)
    metrics = {"samples": len(golden), "postprocess": task.postprocess, "labelled": data.get("labels") is not None,
               **({"sample_plot": plot} if plot else {}),
               "metrics": [dict(r.to_dict(), disagree=[names[i] for i in r.disagree][:20], disagree_count=len(r.disagree))
                           for r in outcome.results]}
    return metrics, checks, outcome.failing


PLOTTED = ("detections", "error", "decisions")


def render_sample(ctx, outcome, names: list[str], work: Path) -> str | None:
    """One sample where a picture says more than the table: boxes on the photo, a curve over time.
    The sample shown is the first one that disagrees with FP32 (else the first one)."""

    for m, r in zip(ctx.spec.task.metrics, outcome.results):
        if m.kind not in PLOTTED:
            continue
        i = r.disagree[0] if r.disagree else 0
        f, d = pick(outcome.fp32_answers[i], m.key, m.label), pick(outcome.deployed_answers[i], m.key, m.label)
        title = f"{m.label}: {names[i]} ({'differs from FP32' if r.disagree else 'agrees with FP32'})"
        path = work / plots.TASK_PNG
        if m.kind == "detections":
            plots.detections_on_photo(_photo(ctx.model_dir, names[i]), boxes(f, "FP32"), boxes(d, "deployed"),
                                      path, title)
        elif m.kind == "error":
            plots.curve_over_time(f, d, path, title, ylabel="Hz" if m.compare == "cents" else (m.unit or m.label))
        else:
            plots.curve_over_time(f, d, path, title, ylabel="probability", threshold=m.threshold)
        return plots.TASK_PNG
    return None


def _photo(folder: Path, rel: str) -> Path | None:
    """The validation file when PIL can open it as an image (else the boxes are drawn on blank axes)."""
    from PIL import Image, UnidentifiedImageError  # deferred: Pillow only when a picture is drawn

    path = Path(folder) / rel
    try:
        with Image.open(path):
            return path
    except (OSError, UnidentifiedImageError, ValueError):
        return None


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
