"""The structured records stages produce: checks, failures and results, and a deployment's outcome.

A `Failure` is what the repair loop reads: its `kind` is one class of the failure taxonomy and
its `signature()` is what "the same failure again" means for no-progress detection.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any


class FailureKind(str, Enum):
    EXPORT_ERROR = "export_error"
    OP_REJECTED = "op_rejected"  # the backend refused nodes (node, op, reason)
    DYNAMIC_SHAPE = "dynamic_shape"
    UNSUPPORTED_DTYPE = "unsupported_dtype"  # int64 and friends
    COMPILE_ERROR = "compile_error"  # graph finalize / context binary generation
    ACCURACY = "accuracy"  # a metric below its threshold
    INTERFACE_MISMATCH = "interface_mismatch"  # I/O names, shapes or dtypes differ from the definition
    BAD_INPUT = "bad_input"
    TOOL_ERROR = "tool_error"  # an external tool died without a recognisable cause


@dataclass
class RejectedNode:
    name: str
    op: str
    reason: str = ""


@dataclass
class Failure:
    stage: str
    kind: FailureKind
    message: str
    nodes: list[RejectedNode] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    log: str = ""  # the tool's own error text, kept verbatim (shortened)

    def signature(self) -> str:
        """Stable identity of the failure: same stage, kind, ops and failing outputs."""
        ops = sorted({f"{n.op}:{n.reason[:60]}" for n in self.nodes})
        outs = sorted(self.details.get("failing_outputs", []))
        raw = json.dumps([self.stage, self.kind.value, ops, outs])
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = self.kind.value
        d["signature"] = self.signature()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Failure":
        return cls(
            stage=d["stage"],
            kind=FailureKind(d["kind"]),
            message=d["message"],
            nodes=[RejectedNode(**n) for n in d.get("nodes", [])],
            details=d.get("details", {}),
            log=d.get("log", ""),
        )


@dataclass
class Check:
    name: str
    passed: bool
    value: Any = None
    threshold: Any = None
    detail: str = ""


@dataclass
class StageResult:
    """What a stage hands on: named artifacts (paths relative to the deployment folder), checks, metrics."""

    stage: str
    passed: bool
    artifacts: dict[str, str] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    failure: Failure | None = None
    seconds: float = 0.0
    key: str = ""
    digests: dict[str, str] = field(default_factory=dict)  # artifact name → sha256
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "passed": self.passed,
            "artifacts": self.artifacts,
            "checks": [asdict(c) for c in self.checks],
            "metrics": self.metrics,
            "failure": self.failure.to_dict() if self.failure else None,
            "seconds": round(self.seconds, 3),
            "key": self.key,
            "digests": self.digests,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StageResult":
        return cls(
            stage=d["stage"],
            passed=d["passed"],
            artifacts=d.get("artifacts", {}),
            checks=[Check(**c) for c in d.get("checks", [])],
            metrics=d.get("metrics", {}),
            failure=Failure.from_dict(d["failure"]) if d.get("failure") else None,
            seconds=d.get("seconds", 0.0),
            key=d.get("key", ""),
            digests=d.get("digests", {}),
        )


def built_precision(quantize: StageResult | None, declared: str) -> str:
    """The precision the deployed graph was built at: the quantize stage's own (a repair may have
    raised the definition's, w8a8 → w8a16 → fp16), the definition's where quantize has not run."""
    return quantize.metrics.get("precision", declared) if quantize is not None else declared


class StageFailed(Exception):
    """Raised inside a stage to end it with a structured failure."""

    def __init__(self, failure: Failure, checks: list[Check] | None = None, metrics: dict | None = None):
        self.failure, self.checks, self.metrics = failure, checks or [], metrics or {}
        super().__init__(failure.message)


@dataclass
class RunOutcome:
    """How a deployment ended, of one graph or of several parts (`bot.deploy`): the one outcome
    type. Over parts in folders of their own, `results` are one per part and one per end-to-end check."""

    results: list[StageResult]
    failure: Failure | None
    out_dir: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    dirs: dict[str, Path] = field(default_factory=dict)  # where each stage's files of *this* run live

    @property
    def passed(self) -> bool:
        return self.failure is None and all(r.passed for r in self.results)

    def result(self, stage: str) -> StageResult | None:
        return next((r for r in self.results if r.stage == stage), None)
