"""Task-level checks: the deployed model's answers against the FP32 model's (and labels).

`postprocess` (the definition's, or "the only output") turns each sample's outputs into the task's
answer; every metric kind is one function in `KINDS`, typed by its pydantic model in
`bot.spec.schema` (discriminated by `kind`). `check` is the one call the validate stage makes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bot.errors import BadInput
from bot.spec.schema import TaskSpec
from bot.task.answers import jsonable, pick, postprocessor
from bot.task.classify import decisions, label, topk
from bot.task.custom import custom
from bot.task.detections import detections
from bot.task.error import error
from bot.task.ranking import ranking
from bot.task.records import Figure, MetricResult
from bot.task.sequence import sequence

KINDS: dict[str, Callable[..., MetricResult]] = {
    "label": label, "topk": topk, "sequence": sequence, "detections": detections, "decisions": decisions,
    "error": error, "ranking": ranking, "custom": custom,
}

__all__ = ["KINDS", "Figure", "MetricResult", "TaskOutcome", "check", "evaluate"]


@dataclass
class TaskOutcome:
    results: list[MetricResult]
    fp32_answers: list[Any] = field(default_factory=list)
    deployed_answers: list[Any] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failing(self) -> list[str]:
        return [r.metric for r in self.results if not r.passed]


def evaluate(task: TaskSpec, fp32: list, deployed: list, labels: list | None, folder: Path) -> list[MetricResult]:
    """Every metric of the definition on answers already computed (one per validation sample)."""
    out = []
    for i, m in enumerate(task.metrics):
        f = [pick(a, m.key, m.label) for a in fp32]
        d = [pick(a, m.key, m.label) for a in deployed]
        try:
            out.append(KINDS[m.kind](m, f, d, labels_for(m, labels), folder))
        except (ValueError, TypeError, KeyError, IndexError) as e:
            raise BadInput(f"task metric {m.label!r} ({m.kind}) cannot read the answers: {e}",
                           where=f"aipc.yaml (task.metrics[{i}])",
                           hint="check what task.postprocess returns for this kind") from None
    return out


def labels_for(metric, labels: list | None) -> list | None:
    """A metric's labels: a label that is a dict is keyed like the answer (`key:` picks the field, a
    missing field is no label); any other label is the answer itself."""
    if labels is None or metric.key is None:
        return labels
    return [lab.get(metric.key) if isinstance(lab, dict) else lab for lab in labels]


def check(task: TaskSpec, folder: Path, fp32_outputs: list[dict], deployed_outputs: list[dict],
          labels: list | None = None) -> TaskOutcome:
    """Postprocess both sides' outputs per sample, then evaluate every metric."""
    post = postprocessor(folder, task.postprocess)
    fp32 = [post(o) for o in fp32_outputs]
    deployed = [post(o) for o in deployed_outputs]
    return TaskOutcome(evaluate(task, fp32, deployed, labels, folder), fp32, deployed)


def answers_json(outcome: TaskOutcome, names: list[str]) -> dict:
    """What `answers.json` holds: per validation sample, its file and both answers."""
    return {"samples": [{"file": n, "fp32": jsonable(f), "deployed": jsonable(d)}
                        for n, f, d in zip(names, outcome.fp32_answers, outcome.deployed_answers)]}
