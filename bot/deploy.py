"""The one place the features compose: definition → backend → stages → repair → report → forge.

Each feature is its own module; this file only wires them in order, so reading it top to bottom
is reading the product's flow, the same for one graph or many: the definition expands into parts
(`bot.spec.expand`; a single graph is one part at the deployment folder), each part goes through the
repair loop driving the pipeline, the checks over the parts together follow (`bot.compose`; none for
one part), then the deployment's manifest (`bot.manifest`), its report and the forge.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bot import backends
from bot.deployment_dir import resolve_out_dir
from bot.errors import BadInput
from bot.manifest import MANIFEST, EndToEndCheck, Manifest, PartRow
from bot.pipeline.lock import deployment_lock
from bot.pipeline.manifest import update_section
from bot.pipeline.runner import forget_from
from bot.records import Check, Failure, FailureKind, RunOutcome, StageFailed, StageResult
from bot.repair.catalogue import all_repairs
from bot.repair.loop import LoopResult, RepairLoop
from bot.repair.state import RepairState
from bot.report import write_files
from bot.spec import load_spec
from bot.spec.expand import Part, expand, in_parts
from bot.stage_options import OptimizeOptions
from bot.stages.base import StageContext
from bot.stages.validate import ValidateStage
from bot.store import read_json, sha256_file, write_json


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
    parts = expand(spec)  # a single graph is one part at the root; several graphs / static sizes, a folder each
    if rerun_from:
        for part in parts:
            stages = forget_from(out / part.rel, rerun_from)
        say(f"re-running {', '.join(stages)} (earlier stages reused)")
    outcome = deploy_parts(spec, folder, out, backend, parts, repair=repair, events=events, say=say, exclude=exclude)
    # deferred like the stages: jinja2 and PyGithub are needed only once the run is over
    from bot.forge import publish

    # the report and the patches, from the manifest, on every deploy (with or without a forge)
    write_files(out, outcome.manifest)
    if in_parts(spec) or not for_pr:  # a deployment of parts also goes to `aipc/<model>` locally for a contributor PR
        publish(deployment_dir=out, model_dir=folder, manifest=outcome.manifest, push=push and not for_pr,
                pr=pr and not for_pr, say=say)
    if for_pr:
        from bot.forge.contributor import publish_for_pr  # deferred: only a contributor PR's run needs it

        publish_for_pr(for_pr, deployment_dir=out, model_dir=folder, manifest=outcome.manifest, say=say)
    return outcome


def deploy_parts(spec, folder: Path, out: Path, backend, parts: list[Part], *, repair: bool = True, events=None,
                 say: Callable[[str], None] = lambda m: None, exclude: list[str] | None = None) -> RunOutcome:
    """Every part through the repair loop and the pipeline, then the checks over the parts together and
    the deployment's manifest; no report, no forge (the caller's). One part at the root is a single graph:
    its manifest is the pipeline's own, at the deployment folder, and nothing is checked over parts."""
    t0 = time.time()
    outcomes: dict[str, RunOutcome] = {}
    seconds: dict[str, float] = {}
    for part in parts:
        if not part.at_root:
            say(f"── {part.rel}: {', '.join(f'{i.name}{i.shape}' for i in part.spec.inputs)}")
        t1 = time.perf_counter()
        outcomes[part.rel] = deploy_part(part.spec, folder, out / part.rel, backend, repair=repair, events=events,
                                         say=say, exclude=exclude)
        seconds[part.rel] = time.perf_counter() - t1
    if len(parts) == 1 and parts[0].at_root:
        return outcomes[""]
    # deferred: numpy and the decode / chain runners, only for a deployment of parts (a cached single graph loads neither)
    from bot.compose import end_to_end_checks, share_weights

    sharing = share_weights(spec, out, parts, outcomes, say)
    e2e = end_to_end_checks(spec, folder, out, parts, outcomes, backend, say)
    return _parts_outcome(spec, out, backend, parts, outcomes, seconds, sharing, e2e, t0)


def deploy_part(spec, folder: Path, out: Path, backend, *, repair: bool = True, events=None,
                say: Callable[[str], None] = lambda m: None, exclude: list[str] | None = None) -> RunOutcome:
    """One graph through the stages, the repair loop and the agent into `out`; no forge (the caller publishes).
    `exclude`: repairs never tried (`/aipc revert`), beside those its last manifest lists as reverted."""
    last = Manifest.read(out)
    reverted = sorted(set(last.reverted if last else []) | set(exclude or []))
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


def _parts_outcome(spec, out: Path, backend, parts: list[Part], outcomes: dict[str, RunOutcome],
                   seconds: dict[str, float], sharing: dict, e2e: list[dict], t0: float) -> RunOutcome:
    """The manifest of a deployment of parts (`kind: multi`): a row per part (its own manifest is in its
    folder), the weight-sharing attempts and the end-to-end checks; results one per part and per check."""
    rows = [_part_row(p, outcomes[p.rel], out / p.rel, out, seconds[p.rel]) for p in parts]
    results = [StageResult(p.rel, outcomes[p.rel].passed, seconds=round(seconds[p.rel], 3),
                           metrics=row.validate_ or {}, failure=outcomes[p.rel].failure) for p, row in zip(parts, rows)]
    results += [StageResult(f"e2e:{e['name']}", e["passed"], seconds=e.get("seconds", 0.0),
                            checks=[Check(**c) for c in e["checks"]]) for e in e2e]
    failure = next((r.failure for r in results if r.failure), None)
    if failure is None and not all(r.passed for r in results):
        bad = next(r for r in results if not r.passed)
        failure = Failure(bad.stage, FailureKind.ACCURACY, f"end-to-end check {bad.stage} failed",
                          details={"checks": [c.__dict__ for c in bad.checks]})
    runtime = out / "runtime"  # the decode loop's files, when there is one
    top = Manifest(model=spec.name, kind="multi", backend=backend.name, target=spec.target.model_dump(mode="json"),
                   versions=next((v for v in (Manifest.parse(o.manifest).versions for o in outcomes.values()) if v), {}),
                   definition=spec.model_dump(mode="json"), parts=rows, weight_sharing=sharing,
                   e2e=[EndToEndCheck.model_validate(e) for e in e2e],
                   status="deployed" if failure is None else "failed", seconds_total=round(time.time() - t0, 3),
                   artifacts={str(p.relative_to(out)): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                              for p in sorted(runtime.rglob("*")) if p.is_file()} if runtime.exists() else {}).dump()
    write_json(out / MANIFEST, top)
    return RunOutcome(results, failure, out, top)


def _part_row(part: Part, outcome: RunOutcome, pout: Path, out: Path, seconds: float) -> PartRow:
    m = Manifest.parse(outcome.manifest)
    row = PartRow(graph=part.graph, variant=part.variant, dir=part.rel,
                  inputs={i.name: i.shape for i in part.spec.inputs},
                  status=m.status if "status" in m.model_fields_set else None, passed=outcome.passed,
                  seconds=round(seconds, 3), precision=part.spec.target.precision, repairs=len(m.repairs),
                  # the records themselves (reason, before/after, diff): the report shows them
                  repair_records=m.repairs,
                  stage_seconds={r.stage: round(r.seconds, 3) for r in outcome.results})
    if outcome.failure:
        row.failure = {"stage": outcome.failure.stage, "kind": outcome.failure.kind.value,
                       "message": outcome.failure.message[:300],
                       "nodes": [f"{n.op} {n.name}: {n.reason}"[:200] for n in outcome.failure.nodes][:10]}
    comp, val = outcome.result("compile"), outcome.result("validate")
    if comp and comp.passed:
        bins = sorted((pout / "package").glob("*.bin")) or sorted((pout / "compile").glob("*.bin"))
        row.binaries = {str(b.relative_to(out)): {"bytes": b.stat().st_size, "sha256": sha256_file(b)} for b in bins}
        row.prepare_seconds = comp.metrics.get("prepare_seconds")
    if val:
        row.validate_ = {"passed": val.passed, "latency_ms_median": val.metrics.get("latency_ms_median"),
                         "outputs": val.metrics.get("outputs")}
    return row


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
    lines, ok = [], True
    for part in expand(spec):
        r = revalidate_deployment(part.spec, folder, out / part.rel)
        ok &= r.passed
        lines += r.lines if part.at_root else [f"[{part.rel}] {line}" for line in r.lines]
    return Revalidation(ok, lines)


def revalidate_deployment(spec, folder: Path, out: Path) -> Revalidation:
    manifest = Manifest.read(out)
    if manifest is None:
        raise BadInput("no manifest.json: this model has not been deployed here", where=str(out))
    lines, ok = [], True
    for rel, meta in manifest.artifacts.items():
        p = out / rel
        if not p.exists():
            ok = False
            lines.append(f"✗ missing   {rel}")
        elif sha256_file(p) != meta["sha256"]:
            ok = False
            lines.append(f"✗ changed   {rel} (sha256 differs from the manifest)")
    if ok:
        lines.append(f"✓ {len(manifest.artifacts)} artifacts match the manifest's sha256")
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
