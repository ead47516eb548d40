"""How close a run came to passing, judged by the check that failed.

A task metric (notes heard, the string read, top-1 agreement) is what the user asked for; an
output's cosine is a proxy for it. When a task check fails, a repair that raises it is progress
even if it lowers some output's cosine (basic-pitch: a rewrite took notes heard 0/4 → 2/4 while
onset cosine fell 0.901 → 0.873, and the cosine-only score threw it away twice). So attempts and
screened candidates compare, in this order: stages passed, how far the task figures are below
their bars (summed, each relative to its bar), then the worst output cosine (the tie-break, and the
whole score when only a tensor threshold fails). Not the number of failing figures: on basic-pitch the
same rewrite also took "note frames" from 0.9955 to 0.985 against a 0.99 bar — two figures failing
instead of one, and still far closer to passing (shortfall −1.0 → −0.50).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Iterable

from bot.records import FailureKind, RunOutcome
from bot.task.records import Figure, MetricResult

MIN_GAIN = 1e-3  # a metric gain smaller than this is noise, not progress


@dataclass(frozen=True)
class TaskShortfall:
    """The task figures below their bar, and by how much (each relative to its bar, summed; ≤ 0)."""

    failing: int = 0
    shortfall: float = 0.0
    values: tuple[tuple[str, float | None], ...] = ()  # (metric: figure, deployed value) of each failing figure

    @classmethod
    def of(cls, results: Iterable[MetricResult]) -> "TaskShortfall":
        failing, total, values = 0, 0.0, []
        for r in results:
            for f in r.figures:
                if f.passed is not False:
                    continue
                failing += 1
                total += _shortfall(f)
                values.append((f"{r.metric}: {f.name}", f.deployed))
        return cls(failing, total, tuple(values))

    @classmethod
    def from_metrics(cls, task: dict | None) -> "TaskShortfall":
        """From the validate stage's `metrics["task"]` (its results as JSON)."""
        if not task:
            return cls()
        names = {f.name for f in fields(Figure)}
        return cls.of(MetricResult(m["metric"], m.get("kind", ""),
                                   [Figure(**{k: v for k, v in f.items() if k in names}) for f in m.get("figures", [])],
                                   m.get("samples", 0))
                      for m in task.get("metrics", []))


def _shortfall(f: Figure) -> float:
    """How far a failing figure is below its bar, relative to the bar (−inf when it has no value)."""
    value = f.deployed if f.judged == "deployed" else (None if f.delta is None else -f.delta)
    if value is None or math.isnan(value) or f.threshold is None:
        return -math.inf
    gap = value - f.threshold if f.op == "≥" else f.threshold - value
    return min(gap, 0.0) / (abs(f.threshold) or 1.0)


@dataclass(frozen=True)
class Score:
    """Higher is better; compare with `improves_on`, not field by field."""

    stages: int  # stages passed
    task: TaskShortfall = TaskShortfall()
    closeness: float = -math.inf  # worst output cosine (accuracy); −(nodes refused) (compat); inf when passed

    def improves_on(self, other: "Score", gain: float = MIN_GAIN) -> bool:
        """Got further, or its task figures fall short of their bars by less, or (task equal) a better cosine."""
        if self.stages != other.stages:
            return self.stages > other.stages
        a, b = self.task.shortfall, other.task.shortfall
        if not (math.isinf(a) and math.isinf(b)) and abs(a - b) > gain:
            return a > b
        return self.closeness > other.closeness + gain

    def rank(self) -> tuple:
        """A sort key consistent with `improves_on` up to its noise margin."""
        return (self.stages, self.task.shortfall, self.closeness)


def worst_cosine(metrics: dict) -> float:
    """The lowest cosine over outputs (an undefined one counts as −2, below any real cosine)."""
    cos = [m.get("cosine") for m in metrics.values()]
    cos = [c if isinstance(c, (int, float)) and not math.isnan(c) else -2.0 for c in cos]
    return min(cos) if cos else -2.0


def score(outcome: RunOutcome) -> Score:
    passed = sum(1 for r in outcome.results if r.passed)
    if outcome.passed:
        return Score(passed, closeness=math.inf)
    f = outcome.failure
    if f is None:
        return Score(passed)
    if f.kind == FailureKind.ACCURACY:
        failed = outcome.result(f.stage)
        task = TaskShortfall.from_metrics(failed.metrics.get("task") if failed is not None else None)
        return Score(passed, task, worst_cosine(f.details.get("metrics", {})))
    if f.nodes or f.details.get("fallback_nodes"):
        return Score(passed, closeness=-float(len(f.nodes) or len(f.details.get("fallback_nodes", []))))
    return Score(passed)


def task_failing(outcome: RunOutcome) -> bool:
    """Is a task check among the checks that failed (so screening must judge the task too)?"""
    f = outcome.failure
    return f is not None and f.kind == FailureKind.ACCURACY and bool(f.details.get("failing_task_metrics"))
