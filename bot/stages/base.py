"""The contract every stage honours.

A stage reads the definition and earlier stages' artifacts from a `StageContext`, writes only into
the folder it is given, and returns a `StageResult` (artifacts, checks, metrics) or raises
`StageFailed` with a structured `Failure`. It never decides whether it may be skipped: the runner
does that from the stage's key, built from what the stage declares it depends on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from bot.backends.base import Backend
from bot.records import Check, StageResult
from bot.spec.schema import Spec
from bot.stage_options import NoOptions, StageOptions


O = TypeVar("O", bound=StageOptions)


@dataclass
class StageContext:
    spec: Spec
    model_dir: Path  # the model's folder (a working copy when a source repair is being tried)
    out_dir: Path  # deployments/<name>
    backend: Backend
    options: dict[str, StageOptions] = field(default_factory=dict)  # stage → its knobs, set by repairs
    results: dict[str, StageResult] = field(default_factory=dict)  # this run's results so far
    dirs: dict[str, Path] = field(default_factory=dict)  # where each finished stage's files live
    progress: Any = None  # callable(str) for long work inside a stage

    def artifact(self, stage: str, name: str) -> Path:
        """Path of an artifact an earlier stage wrote."""
        res = self.results[stage]
        return self.dirs[stage] / res.artifacts[name]

    def opts(self, options: type[O]) -> O:
        """The options the repairs set on the stage `options` belongs to (its defaults when none)."""
        return self.options.get(options.stage) or options()

    def say(self, msg: str) -> None:
        if self.progress:
            self.progress(msg)


class Stage:
    name: ClassVar[str]
    version: ClassVar[str] = "1"
    #: top-level fields of the definition whose change must re-run this stage
    depends_on: ClassVar[tuple[str, ...]] = ()
    #: whether the model folder's files are part of the key (only the stages that read them)
    reads_model_files: ClassVar[bool] = False
    #: the knobs repairs and the agent may set on this stage
    Options: ClassVar[type[StageOptions]] = NoOptions

    @classmethod
    def files_read(cls, spec: Spec) -> list[str]:
        """Files of the model folder (relative paths) this stage runs, when it does not read them all:
        their content joins the key, so editing one re-runs this stage and not the ones before it."""
        return []

    def run(self, ctx: StageContext, work: Path) -> StageResult:
        raise NotImplementedError

    # helpers shared by every stage
    def result(self, artifacts: dict[str, str] | None = None, checks: list[Check] | None = None,
               metrics: dict[str, Any] | None = None) -> StageResult:
        checks = checks or []
        return StageResult(stage=self.name, passed=all(c.passed for c in checks), artifacts=artifacts or {},
                           checks=checks, metrics=metrics or {})
