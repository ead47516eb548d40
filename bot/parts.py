"""The graphs a deployment's manifest holds, in one shape whether it deployed one graph or several.

A single graph is a deployment of one part, at the deployment's own folder (`dir` ""); a deployment
of several graphs or static sizes (`bot.compose`) lists its parts, each in its own folder with its
own stages and repair records, and adds end-to-end checks over them. The report, the forge and the
nightly iterate these parts instead of asking which kind of manifest they were given; which of the
two shapes a manifest on disk has is decided here only. Light on purpose: the GitHub-hosted nightly
plan reads it without the toolchain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DeployedPart:
    dir: str | None  # relative to the deployment folder: "" for a single graph, None for a part without one
    stages: list[dict[str, Any]] = field(default_factory=list)  # the manifest's stage rows
    repairs: list[dict[str, Any]] = field(default_factory=list)  # repair records (reason, before/after, diff)
    # the top manifest's summary of a part in its own folder (status, binaries, validate figures); {} at the root,
    # where the stages themselves are in the manifest
    row: dict[str, Any] = field(default_factory=dict)

    @property
    def at_root(self) -> bool:
        """The graph was deployed into the deployment folder itself: its stages are the manifest's."""
        return self.dir == ""


def _lists_parts(m: dict) -> bool:
    """The manifest lists parts in folders (`kind: multi`) rather than holding one graph's stages."""
    return m.get("kind") == "multi" or ("parts" in m and "stages" not in m)


def parts(m: dict) -> list[DeployedPart]:
    """Every graph the manifest `m` deployed, in order."""
    if _lists_parts(m):
        return [DeployedPart(p.get("dir") or None, p.get("stages") or [], p.get("repair_records") or [], p)
                for p in m.get("parts") or []]
    return [DeployedPart("", m.get("stages") or [], m.get("repairs") or [])]


def end_to_end(m: dict) -> list[dict[str, Any]]:
    """The checks run over the parts together (a decode loop, a chain); none for a single graph."""
    return list(m.get("e2e") or [])
