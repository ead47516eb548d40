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
from bot.deployment_dir import resolve_out_dir
from bot.errors import BadInput
from bot.pipeline import RunOutcome
from bot.pipeline.lock import deployment_lock
from bot.pipeline.manifest import MANIFEST
from bot.pipeline.manifest import update_section
from bot.pipeline.runner import forget_from
from bot.records import StageResult
from bot.records import StageFailed
from bot.records import Failure
from bot.repair.catalogue import all_repairs
from bot.repair.loop import LoopResult, RepairLoop
from bot.repair.state import RepairState
from bot.report import write_files
from bot.spec import load_spec
from bot.stage_options import OptimizeOptions
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

    with deployment_lock(out, command="aipc deploy", wait_seconds=2 * spec.limits.wall_seconds, say=say):
        return _deploy_locked(spec, folder, out, backend, repair=repair, push=push, pr=pr, events=events, say=say,
                              exclude=exclude, rerun_from=rerun_from, for_pr=for_pr)


def _deploy_locked(spec, folder: Path, out: Path, backend, *, repair, push, pr, events, say, exclude, rerun_from,
                   for_pr) -> RunOutcome:
    in_parts = bool(spec.graphs or spec.variants)  # several graphs / static sizes, each part in its own folder
    if rerun_from:
        from bot.compose import expand  # deferred: only a definition with parts loads compose

        for part_out in ([out / p.rel for p in expand(spec)] if in_parts else [out]):
            stages = forget_from(part_out, rerun_from)
        say(f"re-running {', '.join(stages)} (earlier stages reused)")
    if in_parts:  # composed above the pipeline
        from bot.compose import deploy_multi  # deferred: only a definition with parts loads compose

        outcome = deploy_multi(spec, folder, out, backend, deploy_part=deploy_one, repair=repair, events=events,
                               say=say)
    else:
        outcome = deploy_one(spec, folder, out, backend, repair=repair, events=events, say=say, exclude=exclude)
    # deferred like the stages: jinja2 and PyGithub are needed only once the run is over
    from bot.forge import publish

    # the report and the patches, from the manifest, on every deploy (with or without a forge)
    write_files(out, outcome.manifest)
    if in_parts or not for_pr:  # a deployment of parts also goes to `aipc/<model>` locally for a contributor PR
        publish(deployment_dir=out, model_dir=folder, manifest=outcome.manifest, push=push and not for_pr,
                pr=pr and not for_pr, say=say)
    if for_pr:
        from bot.forge.contributor import publish_for_pr  # deferred: only a contributor PR's run needs it

        publish_for_pr(for_pr, deployment_dir=out, model_dir=folder, manifest=outcome.manifest, say=say)
    return outcome


def deploy_one(spec, folder: Path, out: Path, backend, *, repair: bool = True, events=None,
               say: Callable[[str], None] = lambda m: None, exclude: list[str] | None = None) -> RunOutcome:
    """One graph through the stages, the repair loop and the agent; no forge (the caller publishes)."""
    reverted = sorted(set((read_json(out / MANIFEST) or {}).get("reverted", [])) | set(exclude or []))
    loop = RepairLoop(spec, folder, out, backend, events=events, say=say, exclude=reverted)
    start = upfront_state(spec, folder, exclude=reverted)
    if spec.repairs:
        say(f"repairs applied up front (the definition's repairs:): {', '.join(spec.repairs)}")
    outcome = loop.run_state(start)
    if not outcome.passed and repair:
        result = loop.run(outcome, start)
        say(f"repair loop: {result.stopped}; {sum(a.kept for a in result.attempts)} of "
            f"{len(result.attempts)} repair(s) kept")
    else:
        result = LoopResult(outcome, start)
    result = _agent(loop, result, say, enabled=repair)
    return loop.finish(result)


def upfront_state(spec, folder: Path, exclude: list[str] | None = None) -> RepairState:
    """The state the definition's `repairs:` ask for before the first run, in the order given.

    A repair proposes a change in answer to a failure; up front there is none yet, so each is asked
    with a stand-in failure of the first kind it answers. A graph rule is simply switched on. A
    repair that needs a failing run to decide (localization, a patch, a collapsed output) or that
    changes nothing for this definition is refused by name rather than silently ignored."""
    if not spec.repairs:
        return RepairState()  # nothing asked for up front: the catalogue (graph rules, onnxscript) stays unloaded

    state, catalogue = RepairState(), all_repairs()
    for i, rid in enumerate(spec.repairs):
        if rid in (exclude or []):
            continue
        r = catalogue[rid]  # the loader refused unknown ids
        if r.level == "graph":
            new = state.appended(OptimizeOptions, "rewrites", [rid])
        else:
            stage = {"export": "export", "quant": "validate"}.get(r.level, "compat")
            ctx = {"spec": spec, "model_dir": folder, "params": {}, "localize": lambda: [],
                   "divergent": lambda: [], "output_producers": lambda: {}}
            new = r.propose(Failure(stage, r.answers[0], "applied up front (the definition's repairs:)"), state, ctx)
        if new is None or new == state:
            raise BadInput(f"repairs[{i}]: {rid!r} cannot be applied up front to this definition: it changes nothing "
                           f"here (already in effect, or it needs a failing run to decide, e.g. localization); "
                           f"leave it to the repair loop", where=str(folder / "aipc.yaml"))
        state = new
    return state


NO_LLM = {"calls": 0, "tokens_in": 0, "tokens_out": 0, "usd": 0.0, "seconds": 0.0}


def _agent(loop: RepairLoop, result, say, enabled: bool = True):
    """Hand what the rules could not fix to the LLM agent, when one is configured.

    Every run records an `llm` section, zeros included, so "this cost nothing" is a fact in
    the manifest rather than an absence."""

    usage = {**NO_LLM, "mode": "not needed" if enabled else "repair off (--no-repair)"}
    if enabled and not result.outcome.passed:
        from bot.agent.llm import AgentRequest, configured, run_agent  # deferred: pydantic models and openai, only when a repair is planned

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


def revalidate(model: Path, *, out_dir: Path | None = None, events=None,
               say: Callable[[str], None] = lambda m: None) -> Revalidation:
    """Re-check a deployment without rebuilding it: hashes first, then the device run; a deployment
    of parts is re-checked part by part. Waits for a deploy of the same folder to finish."""

    spec, folder = load_spec(model)
    out = resolve_out_dir(folder, spec.name, out_dir)
    if not (out / MANIFEST).is_file():
        raise BadInput("no manifest.json: this model has not been deployed here", where=str(out))
    with deployment_lock(out, command="aipc validate", wait_seconds=2 * spec.limits.wall_seconds, say=say):
        return _revalidate_locked(spec, folder, out)


def _revalidate_locked(spec, folder: Path, out: Path) -> Revalidation:
    if spec.graphs or spec.variants:
        from bot.compose import expand  # deferred: only a definition with parts loads compose

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
        try:
            res = ValidateStage().run(ctx, Path(tmp))
        except StageFailed as e:
            res = StageResult("validate", False, checks=e.checks, failure=e.failure)
    for c in res.checks:
        lines.append(f"{'✓' if c.passed else '✗'} {c.name}: {c.value} (threshold {c.threshold})")
    return Revalidation(ok and res.passed, lines)
