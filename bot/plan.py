"""`aipc plan MODEL`: what a deploy would do, without doing it.

Why: before spending minutes on the HTP, a person wants to see the definition as the bot reads it
(every default filled in), the stages in order with which are already in the store and which would
run (and why), and the repairs the last run kept and the ones a reviewer reverted — the way Olive
prints a resolved config. Nothing here runs a stage or writes a file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from bot import backends
from bot.deployment_dir import resolve_out_dir
from bot.manifest import Manifest
from bot.pipeline.runner import Pipeline, _dig, default_workflow
from bot.spec import load_spec
from bot.spec.expand import expand
from bot.stages import REGISTRY


@dataclass
class StagePlan:
    stage: str
    status: str  # "cached" | "would run" | "after an earlier stage"
    key: str = ""
    why: str = ""


@dataclass
class PartPlan:
    part: str  # "" for a single-graph model, else graph/variant
    out_dir: str
    stages: list[StagePlan]
    kept_repairs: list[dict] = field(default_factory=list)  # the last run's kept repairs (the loop re-finds them)
    reverted: list[str] = field(default_factory=list)  # `/aipc revert`: never tried again
    last_status: str = ""


@dataclass
class Plan:
    model: str
    definition_file: str
    backend: str
    resolved: dict
    parts: list[PartPlan]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def lines(self) -> list[str]:
        out = [f"model {self.model} ({self.definition_file}) on {self.backend}", "",
               "resolved definition (every default filled in):"]
        out += ["  " + line for line in yaml.safe_dump(self.resolved, sort_keys=False, width=110).splitlines()]
        for part in self.parts:
            title = f"part {part.part}" if part.part else "stages"
            out += ["", f"{title} → {part.out_dir}" + (f" (last run: {part.last_status})" if part.last_status else "")]
            for s in part.stages:
                mark = {"cached": "✓ cached", "would run": "▶ would run"}.get(s.status, "· then runs")
                out.append(f"  {s.stage:<9} {mark:<12} {s.key[:12]:<12} {s.why}".rstrip())
            if part.kept_repairs:
                out.append("  repairs the last run kept (the loop finds them again; their stages are in the store):")
                out += [f"    {r['repair']} ({r['level']}): {r['reason'][:100]}" for r in part.kept_repairs]
            else:
                out.append("  repairs the last run kept: none")
            out.append(f"  reverted (never tried again): {', '.join(part.reverted) or 'none'}")
        return out


def _why(stage: str, spec, manifest: Manifest | None, versions: dict) -> str:
    """Why a stage's key is not in the store: what differs from the last run, as far as can be told."""
    if manifest is None:
        return "never deployed here"
    old_def = manifest.definition
    new_def = spec.model_dump(mode="json")
    cls = REGISTRY[stage]
    changed = [p for p in cls.depends_on if _dig(old_def, p) != _dig(new_def, p)]
    if changed:
        return "the definition changed: " + ", ".join(changed)
    tools = [f"{k} {manifest.versions.get(k)} → {v}" for k, v in versions.items() if manifest.versions.get(k) != v]
    if tools:
        return "tools changed: " + ", ".join(tools)
    last = next((s for s in manifest.stages or [] if s.stage == stage), None)
    if last is not None and not last.passed:
        return "it failed last time (a failed stage is never reused)"
    if last is None:
        return "the last run stopped before it"
    return ("the model's files changed" if cls.reads_model_files else
            "its inputs changed (an earlier stage's output, or repair options)")


def plan_part(spec, folder: Path, out: Path, backend, part: str = "") -> PartPlan:
    manifest = Manifest.read(out)
    pipe = Pipeline(spec, folder, out, backend)
    found = pipe.plan({})
    stages = []
    for name, key, res in found:
        stages.append(StagePlan(name, "cached", key) if res is not None else
                      StagePlan(name, "would run", key, _why(name, spec, manifest, pipe.versions)))
    for name in pipe.workflow[len(found):]:
        stages.append(StagePlan(name, "after an earlier stage",
                                why="its key needs the new output of the stage before it"))
    if manifest is None:
        return PartPlan(part, str(out), stages)
    return PartPlan(part, str(out), stages, kept_repairs=[r.dump() for r in manifest.repairs if r.kept],
                    reverted=list(manifest.reverted),
                    last_status=manifest.status if "status" in manifest.model_fields_set else "")


def plan(model: Path, *, out_dir: Path | None = None, engine: str | None = None) -> Plan:
    spec, folder = load_spec(model)
    if engine:
        spec = spec.model_copy(update={"target": spec.target.model_copy(update={"engine": engine})})
    backend = backends.for_target(spec.target)
    out = resolve_out_dir(folder, spec.name, out_dir)
    parts = [plan_part(p.spec, folder, out / p.rel, backend, part=p.rel) for p in expand(spec)]
    path = folder / "aipc.yaml" if Path(model).is_dir() else Path(model)
    resolved = spec.model_dump(mode="json")
    # the quantization section as it will run: older spellings and defaults folded in
    resolved["quantization"].update(per_channel=spec.per_channel, calibrate_method=spec.calibrate_method)
    return Plan(spec.name, str(path), backend.name, resolved, parts)


__all__ = ["Plan", "PartPlan", "StagePlan", "default_workflow", "plan"]
