"""What a task metric hands back: figures (FP32 vs deployed, the delta, a bar) per metric.

Shaped like AI Hub's `numerics.yaml`: a figure has the FP32 model's value, the deployed model's
value and the difference. Agreement figures (deployed answers judged against FP32's) have no
FP32 value of their own: FP32 is the reference they are measured against.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal


@dataclass
class Figure:
    name: str  # e.g. "agreement with FP32", "accuracy vs labels"
    deployed: float | None
    fp32: float | None = None
    threshold: float | None = None
    op: Literal["≥", "≤"] = "≥"
    judged: Literal["deployed", "drop"] = "deployed"  # drop: the bar bounds fp32 − deployed
    unit: str = ""

    @property
    def delta(self) -> float | None:
        if self.fp32 is None or self.deployed is None:
            return None
        return self.deployed - self.fp32

    @property
    def passed(self) -> bool | None:
        """None when there is no bar; NaN never passes one."""
        if self.threshold is None:
            return None
        value = self.deployed if self.judged == "deployed" else (
            None if self.delta is None else -self.delta)
        if value is None or math.isnan(value):
            return False
        return value >= self.threshold if self.op == "≥" else value <= self.threshold

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(delta=self.delta, passed=self.passed)
        return {k: _round(v) for k, v in d.items()}


@dataclass
class MetricResult:
    metric: str  # the metric's name in the definition / report
    kind: str
    figures: list[Figure]
    samples: int
    disagree: list[int] = field(default_factory=list)  # validation samples whose answers differ
    note: str = ""

    @property
    def passed(self) -> bool:
        return all(f.passed is not False for f in self.figures)

    def to_dict(self) -> dict:
        return {"metric": self.metric, "kind": self.kind, "passed": self.passed, "samples": self.samples,
                "figures": [f.to_dict() for f in self.figures], "disagree": self.disagree, "note": self.note}


def _round(v):
    return round(v, 6) if isinstance(v, float) and math.isfinite(v) else v
