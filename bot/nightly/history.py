"""Each night's figures, one JSON line per model per run, so a report can show where a metric is heading.

`deployments/nightly-history.jsonl` by default. Writing is idempotent per run id: a re-run of the same
night (a retried workflow keeps its `GITHUB_RUN_ID`) replaces that night's lines instead of adding more.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from bot.nightly.figures import value_at

FILE = "nightly-history.jsonl"
SPARK = "▁▂▃▄▅▆▇█"
KEPT = ("stages", "failures", "outputs", "checks", "placement", "latency_ms", "integrity", "versions")


def default_run_id() -> str:
    """The workflow run when there is one (re-runs keep it), else the UTC date: one entry per night."""
    return os.environ.get("GITHUB_RUN_ID") or time.strftime("%Y-%m-%d", time.gmtime())


def read(path: Path) -> list[dict]:
    entries = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn line from an interrupted write must not lose the rest
    return entries


def entry(run_id: str, model: str, figures: dict, *, baseline: str, regressions: list[str]) -> dict:
    return {"run": run_id, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "model": model,
            "baseline": baseline, "regressions": regressions, **{k: figures.get(k) for k in KEPT}}


def merged(old: list[dict], new: list[dict]) -> list[dict]:
    """`old` then `new`, an entry of `new` replacing any of `old` with the same (run, model)."""
    mine = {(e["run"], e["model"]) for e in new}
    return [e for e in old if (e.get("run"), e.get("model")) not in mine] + new


def record(path: Path, new: list[dict]) -> list[dict]:
    """Append tonight's entries, replacing any with the same (run, model); returns the whole history."""
    path = Path(path)
    kept = merged(read(path), new)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(e, sort_keys=True, allow_nan=True) + "\n" for e in kept))
    tmp.replace(path)
    return kept


def series(history: list[dict], model: str, path: tuple[str, ...], last: int = 8) -> list:
    """The last `last` values of one metric for one model, oldest first (None where it was not measured)."""
    return [value_at(e, tuple(path)) for e in history if e.get("model") == model][-last:]


def sparkline(values: list) -> str:
    """▁…█ scaled between the smallest and largest value; ✓/✗ for pass/fail; · where nothing was measured."""
    if values and all(isinstance(v, bool) or v is None for v in values):
        return "".join("·" if v is None else ("✓" if v else "✗") for v in values)
    nums = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v)]
    lo, hi = (min(nums), max(nums)) if nums else (0.0, 0.0)
    out = []
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            out.append("·")
        else:
            out.append(SPARK[0] if hi == lo else SPARK[round((float(v) - lo) / (hi - lo) * (len(SPARK) - 1))])
    return "".join(out)
