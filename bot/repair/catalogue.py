"""The repair catalogue: every fix the bot can apply, each a named unit that says what it answers.

A repair never edits artifacts directly: it returns new *options* for the stages (which exporter,
which graph rewrites, which tensors to keep in 16 bits) or a source patch; the pipeline re-runs
from the first stage whose key those options change. Levels follow the AIPC report: export,
graph, quant, source.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from bot.records import Failure, FailureKind

Level = Literal["export", "graph", "quant", "source"]


@dataclass
class RepairState:
    """Everything a run of the pipeline is steered by, besides the definition itself."""

    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage → knobs
    patches: list[str] = field(default_factory=list)  # unified diffs against the model folder

    def copy(self) -> "RepairState":
        return copy.deepcopy(self)

    def with_option(self, stage: str, key: str, value: Any) -> "RepairState":
        new = self.copy()
        new.options.setdefault(stage, {})[key] = value
        return new

    def appended(self, stage: str, key: str, items: list) -> "RepairState":
        new = self.copy()
        cur = new.options.setdefault(stage, {}).setdefault(key, [])
        cur.extend(i for i in items if i not in cur)
        return new


@dataclass(frozen=True)
class Repair:
    id: str
    level: Level
    answers: tuple[FailureKind, ...]
    summary: str
    #: (failure, state, context) → a new state, or None when this repair has nothing to offer here
    propose: Callable[[Failure, RepairState, dict], RepairState | None] = field(repr=False, default=None)
    #: () → why this repair cannot run on this machine (a missing optional install), or None
    unavailable: Callable[[], str | None] | None = field(repr=False, default=None)


CATALOGUE: dict[str, Repair] = {}


def register(repair: Repair) -> Repair:
    CATALOGUE[repair.id] = repair
    return repair


def all_repairs() -> dict[str, Repair]:
    """The whole catalogue, with every level's module imported so each has registered."""
    from bot.repair import repairs  # noqa: F401

    return CATALOGUE
