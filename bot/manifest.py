"""The typed shape of `manifest.json`: what the pipeline (a part's) and `bot.deploy` (a deployment of
parts') write, and what the report, the forge and the nightly read.

One model for both shapes a deployment has had: a single graph (its `stages` in the manifest) and
parts in folders of their own (`kind: multi`, `parts` and end-to-end checks); `bot.parts` turns
either into parts. Every field has a default and unknown sections are kept (`extra="allow"`), so a
manifest written by an earlier version still loads — the nightly re-reads deployments made long ago
— and `dump()` gives back exactly the keys that were read or set, so re-writing one does not invent
sections. Stage metrics and the definition stay plain JSON: each stage and the spec own their shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bot.store import read_json

MANIFEST = "manifest.json"


class _Record(BaseModel):
    """A section of the manifest: typed where the bot reads it, open to what other versions wrote."""

    model_config = ConfigDict(extra="allow")

    def dump(self) -> dict[str, Any]:
        """Plain values (as `bot.store.write_json` writes them), only the keys that were read or set: a
        default is not written back."""
        return self.model_dump(exclude_unset=True, by_alias=True)


class StageRow(_Record):
    """One stage's result as the manifest lists it (`bot.records.StageResult.to_dict` plus `cached`)."""

    stage: str
    passed: bool = False
    artifacts: dict[str, str] = Field(default_factory=dict)
    checks: list[dict[str, Any]] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
    failure: dict[str, Any] | None = None
    seconds: float = 0.0
    key: str = ""
    digests: dict[str, str] = Field(default_factory=dict)
    cached: bool = False  # how this run got the result, not the result: reports and the forge ignore it


class RepairRecord(_Record):
    """One attempt of the repair loop: what changed (options before/after, a source diff) and why.
    `None` is accepted where earlier versions wrote it (the readers treat it as absent)."""

    n: int | None = 0
    repair: str = "?"
    level: str = "unknown"
    reason: str | None = ""
    kept: bool | None = False
    before: dict[str, Any] | None = Field(default_factory=dict)
    after: dict[str, Any] | None = Field(default_factory=dict)
    diff: str | None = ""
    seconds: float | None = None
    composed: list[str] = Field(default_factory=list)  # repairs the CPU screen ran with it in one device attempt


class PartRow(_Record):
    """The top manifest's summary of a part deployed into a folder of its own (its own manifest is there)."""

    graph: str = "?"
    variant: str | None = None
    dir: str | None = None  # relative to the deployment folder: <graph> or <graph>/<variant>
    inputs: dict[str, Any] = Field(default_factory=dict)
    status: str | None = None
    passed: bool | None = False
    seconds: float | None = 0.0
    precision: str | None = None
    repairs: int | None = None  # how many were tried; the records follow
    repair_records: list[RepairRecord] = Field(default_factory=list)
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    failure: dict[str, Any] | None = None  # stage, kind, message, nodes as "op name: reason"
    binaries: dict[str, dict[str, Any]] = Field(default_factory=dict)
    validate_: dict[str, Any] | None = Field(default=None, alias="validate")  # `validate` is BaseModel's
    prepare_seconds: float | None = None
    target: dict[str, Any] | None = None  # earlier versions' part rows named their target; the top one does now
    llm: dict[str, Any] | None = None  # the part's own LLM usage, when its repair loop asked one

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class EndToEndCheck(_Record):
    """A check over the parts together (the decode loop, a chain), with its measured facts."""

    name: str = "?"
    passed: bool | None = False
    seconds: float | None = None
    checks: list[dict[str, Any]] = Field(default_factory=list)


class Manifest(_Record):
    """The whole record of one deployment."""

    model: str = "?"
    kind: str | None = None  # "multi": parts in folders (`bot.deploy`); absent for a single graph
    status: str = "?"  # running | deployed | failed
    target: dict[str, Any] = Field(default_factory=dict)  # what the files are: the deployed precision
    requested: dict[str, Any] | None = None
    deployed: dict[str, Any] | None = None
    backend: str = ""
    definition: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    workflow: list[str] = Field(default_factory=list)
    started: str | None = None
    seconds_total: float = 0.0
    seconds_in_stages: float | None = None
    stages: list[StageRow] | None = None  # a single graph's
    parts: list[PartRow] | None = None  # parts in folders of their own
    weight_sharing: dict[str, dict[str, Any]] = Field(default_factory=dict)
    e2e: list[EndToEndCheck] = Field(default_factory=list)
    artifacts: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # sections other parts of the bot own, kept across rewrites (`bot.pipeline.manifest.KEPT_SECTIONS`)
    repairs: list[RepairRecord] = Field(default_factory=list)
    repair_state: dict[str, Any] | None = None
    localization: dict[str, Any] | None = None
    llm: dict[str, Any] | None = None
    storage: dict[str, Any] | None = None
    agent: dict[str, Any] | None = None
    reverted: list[str] = Field(default_factory=list)

    def model_or(self, fallback: str) -> str:
        """The model the manifest names, else `fallback` (the deployment folder's name): a manifest
        cut off before the model was written still belongs to its folder."""
        return (self.model if "model" in self.model_fields_set else "") or fallback

    @classmethod
    def parse(cls, data: dict[str, Any] | Manifest) -> Manifest:
        return data if isinstance(data, Manifest) else cls.model_validate(data)

    @classmethod
    def read(cls, path: Path) -> Manifest | None:
        """The manifest at `path` (a file or a deployment folder), or None when there is none or it is
        not JSON (a deploy cut off mid-write)."""
        path = Path(path)
        data = read_json(path / MANIFEST if path.is_dir() else path)
        return cls.parse(data) if isinstance(data, dict) else None
