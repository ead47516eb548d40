"""The graphs a deployment's manifest holds, in one shape whether it deployed one graph or several.

A single graph is a deployment of one part, at the deployment's own folder (`dir` ""); a deployment
of several graphs or static sizes (`bot.spec.expand`) lists its parts, each in its own folder with its
own stages and repair records, and adds end-to-end checks over them. The report, the forge and the
nightly iterate these parts instead of asking which kind of manifest they were given; which of the
two shapes a manifest on disk has is decided here only. Light on purpose: the GitHub-hosted nightly
plan reads it without the toolchain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.manifest import Manifest, PartRow, StageRow


@dataclass(frozen=True)
class DeployedPart:
    dir: str | None  # relative to the deployment folder: "" for a single graph, None for a part without one
    stages: list[StageRow] = field(default_factory=list)  # the manifest's stage rows
    repairs: list[dict[str, Any]] = field(default_factory=list)  # repair records (reason, before/after, diff)
    # the top manifest's summary of a part in its own folder (status, binaries, validate figures); None at the
    # root, where the stages themselves are in the manifest
    row: PartRow | None = None

    @property
    def at_root(self) -> bool:
        """The graph was deployed into the deployment folder itself: its stages are the manifest's."""
        return self.dir == ""


def _lists_parts(m: Manifest) -> bool:
    """The manifest lists parts in folders (`kind: multi`) rather than holding one graph's stages."""
    return m.kind == "multi" or (m.parts is not None and m.stages is None)


def parts(m: dict | Manifest) -> list[DeployedPart]:
    """Every graph the manifest `m` deployed, in order."""
    m = Manifest.parse(m)
    if _lists_parts(m):
        # a part's stages are in its own manifest; rows written by earlier versions may hold them too
        return [DeployedPart(p.dir or None, [StageRow.model_validate(s) for s in (p.model_extra or {}).get("stages") or []],
                             [r.dump() for r in p.repair_records], p) for p in m.parts or []]
    return [DeployedPart("", list(m.stages or []), [r.dump() for r in m.repairs])]


def end_to_end(m: dict | Manifest) -> list[dict[str, Any]]:
    """The checks run over the parts together (a decode loop, a chain); none for a single graph."""
    return [e.dump() for e in Manifest.parse(m).e2e]
