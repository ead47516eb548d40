"""What a repair is: a named unit that says which failures it answers and proposes a new state.

A repair never edits artifacts directly: it returns new *options* for the stages (which exporter,
which graph rewrites, which tensors to keep in 16 bits) or a source patch; the pipeline re-runs
from the first stage whose key those options change. Levels follow the AIPC report: export,
graph, quant, source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

from bot.records import Failure, FailureKind
from bot.repair.state import RepairState

Level = Literal["export", "graph", "quant", "source"]


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
    #: the CPU QDQ simulation shows what it changes (the quantization, an output's form), so the
    #: planner may screen it there; a rewrite for device numerics is only seen on the device
    host_visible: bool = False
