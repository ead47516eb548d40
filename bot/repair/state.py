"""What steers a run of the pipeline besides the definition: stage options and source patches.

A repair never edits artifacts: it returns a new `RepairState`, and the pipeline re-runs from the
first stage whose content key those options change.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


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
