"""The graphs a deployment's manifest holds, in one shape whether it deployed one graph or several.

A single graph is a deployment of one part, at the deployment's own folder (`dir` ""); a composite
deployment (`bot.compose`: several graphs or static sizes) lists its parts, each in its own folder
with its own stages and repair records. The report and the nightly iterate these parts instead of
asking which kind of manifest they were given. Light on purpose: the GitHub-hosted nightly plan
reads it without the toolchain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DeployedPart:
    dir: str | None  # relative to the deployment folder: "" for a single graph, None for a part without one
    stages: list[dict[str, Any]] = field(default_factory=list)  # the manifest's stage rows
    repairs: list[dict[str, Any]] = field(default_factory=list)  # repair records (reason, before/after, diff)


def is_composite(m: dict) -> bool:
    """A composite deployment (`bot.compose`): several graphs/variants listed as `parts`."""
    return m.get("kind") == "multi" or ("parts" in m and "stages" not in m)


def parts(m: dict) -> list[DeployedPart]:
    """Every graph the manifest `m` deployed, in order."""
    if is_composite(m):
        return [DeployedPart(p.get("dir") or None, p.get("stages") or [], p.get("repair_records") or [])
                for p in m.get("parts") or []]
    return [DeployedPart("", m.get("stages") or [], m.get("repairs") or [])]
