"""The one place the features compose: definition → backend → stages → repair → report → forge.

Each feature is its own module; this file only wires them in order, so reading it top to bottom
is reading the product's flow.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bot import backends
from bot.cli_paths import resolve_out_dir
from bot.errors import BadInput
from bot.pipeline import RunOutcome
from bot.pipeline.manifest import MANIFEST
from bot.records import StageResult
from bot.repair.catalogue import RepairState
from bot.repair.loop import LoopResult, RepairLoop
from bot.spec import load_spec
from bot.stages.base import StageContext
from bot.stages.validate import ValidateStage
from bot.store import read_json, sha256_file


def deploy(model: Path, *, out_dir: Path | None = None, engine: str | None = None, repair: bool = True,
           push: bool = False, pr: bool = False, events=None, say: Callable[[str], None] = lambda m: None,
           exclude: list[str] | None = None, rerun_from: str | None = None, for_pr: int | None = None) -> RunOutcome:
    """`rerun_from` runs that stage and the ones after it again (the earlier ones are reused);
    `for_pr` publishes for a contributor's pull request (`bot.forge.contributor`) instead of `aipc/<model>`."""
    spec, folder = load_spec(model)
    if engine:
        spec = spec.model_copy(update={"target": spec.target.model_copy(update={"engine": engine})})
    backend = backends.for_target(spec.target)
    out = resolve_out_dir(folder, spec.name, out_dir)
    composite = bool(spec.graphs or spec.variants)
    if rerun_from:
        from bot.compose import expand
        from bot.pipeline.runner import forget_from

        for part_out in ([out / p.rel for p in expand(spec)] if composite else [out]):
            stages = forget_from(part_out, rerun_from)
        say(f"re-running {', '.join(stages)} (earlier stages reused)")
    if composite:  # several graphs / static sizes: composed above the pipeline
        from bot.compose import deploy_multi

        outcome = deploy_multi(spec, folder, out, backend, repair=repair, events=events, say=say,
                               push=push and not for_pr, pr=pr and not for_pr)
    else:
        outcome = deploy_one(spec, folder, out, backend, repair=repair, events=events, say=say, exclude=exclude)
        if not for_pr:
            from bot.forge import publish

            publish(deployment_dir=out, model_dir=folder, manifest=outcome.manifest, push=push, pr=pr, say=say)
    if for_pr:
        from bot.forge.contributor import publish_for_pr

        publish_for_pr(for_pr, deployment_dir=out, model_dir=folder, manifest=outcome.manifest, say=say)
    return outcome


def deploy_one(spec, folder: Path, out: Path, backend, *, repair: bool = True, events=None,
               say: Callable[[str], None] = lambda m: None, exclude: list[str] | None = None) -> RunOutcome:
    """One graph through the stages, the repair loop and the agent; no forge (the caller publishes)."""
    reverted = sorted(set((read_json(out / MANIFEST) or {}).get("reverted", [])) | set(exclude or []))
    loop = RepairLoop(spec, folder, out, backend, events=events, say=say, exclude=reverted)
    outcome = loop.run_state(RepairState())
    if not outcome.passed and repair:
        result = loop.run(outcome)
        say(f"repair loop: {result.stopped}; {sum(a.kept for a in result.attempts)} of "
            f"{len(result.attempts)} repair(s) kept")
    else:
        result = LoopResult(outcome, RepairState())
    result = _agent(loop, result, say, enabled=repair)
    return loop.finish(result)


NO_LLM = {"calls": 0, "tokens_in": 0, "tokens_out": 0, "usd": 0.0, "seconds": 0.0}


def _agent(loop: RepairLoop, result, say, enabled: bool = True):
    """Hand what the rules could not fix to the LLM agent, when one is configured.

    Every run records an `llm` section, zeros included, so "this cost nothing" is a fact in
    the manifest rather than an absence."""
    from bot.pipeline.manifest import update_section

    usage = {**NO_LLM, "mode": "not needed" if enabled else "repair off (--no-repair)"}
    if enabled and not result.outcome.passed:
        from bot.agent.llm import AgentRequest, configured, run_agent

        ok, why = configured(loop.spec)
        if not ok or loop.limits.llm_budget_usd <= 0:
            why = why if not ok else "limits.llm_budget_usd is 0: rule planner only"
            say(f"LLM agent off — {why}")
            usage["mode"] = why
        else:
            agent = run_agent(AgentRequest(failure=result.outcome.failure, state=result.state,
                                           model_dir=loop.model_dir, out_dir=loop.out_dir, spec=loop.spec,
                                           rerun=loop.run_state, limits=loop.limits))
            usage = {**NO_LLM, **agent.usage, "mode": "agent"}
            record = agent.to_dict()
            record["transcript"] = record.get("transcript", [])[-40:]
            update_section(loop.out_dir, "agent", record)
            say(f"LLM agent: {agent.outcome} ({agent.reason}); {usage['calls']} call(s), ${usage['usd']:.4f}")
            if agent.best is not None and agent.outcome == "fixed":
                result.state, result.outcome = agent.state, agent.best
                result.stopped = "fixed by the LLM agent"
    update_section(loop.out_dir, "llm", usage)
    return result


@dataclass
class Revalidation:
    passed: bool
    lines: list[str] = field(default_factory=list)


def revalidate(model: Path, *, out_dir: Path | None = None, events=None) -> Revalidation:
    """Re-check a deployment without rebuilding it: hashes first, then the device run; a composite
    deployment is re-checked part by part."""
    spec, folder = load_spec(model)
    out = resolve_out_dir(folder, spec.name, out_dir)
    if spec.graphs or spec.variants:
        from bot.compose import expand

        lines, ok = [], True
        for part in expand(spec):
            r = revalidate_deployment(part.spec, folder, out / part.rel)
            ok &= r.passed
            lines += [f"[{part.rel}] {line}" for line in r.lines]
        return Revalidation(ok, lines)
    return revalidate_deployment(spec, folder, out)


def revalidate_deployment(spec, folder: Path, out: Path) -> Revalidation:
    manifest = read_json(out / MANIFEST)
    if not manifest:
        raise BadInput("no manifest.json: this model has not been deployed here", where=str(out))
    lines, ok = [], True
    for rel, meta in manifest.get("artifacts", {}).items():
        p = out / rel
        if not p.exists():
            ok = False
            lines.append(f"✗ missing   {rel}")
        elif sha256_file(p) != meta["sha256"]:
            ok = False
            lines.append(f"✗ changed   {rel} (sha256 differs from the manifest)")
    if ok:
        lines.append(f"✓ {len(manifest.get('artifacts', {}))} artifacts match the manifest's sha256")
    backend = backends.for_target(spec.target)
    ctx = StageContext(spec, folder, out, backend)
    for stage in ("load", "quantize", "compile"):
        data = read_json(out / stage / "result.json")
        if not data or not data.get("passed"):
            return Revalidation(False, lines + [f"✗ stage {stage} has no passing result to re-check"])
        ctx.results[stage], ctx.dirs[stage] = StageResult.from_dict(data), out / stage
    with tempfile.TemporaryDirectory() as tmp:
        from bot.records import StageFailed

        try:
            res = ValidateStage().run(ctx, Path(tmp))
        except StageFailed as e:
            res = StageResult("validate", False, checks=e.checks, failure=e.failure)
    for c in res.checks:
        lines.append(f"{'✓' if c.passed else '✗'} {c.name}: {c.value} (threshold {c.threshold})")
    return Revalidation(ok and res.passed, lines)
