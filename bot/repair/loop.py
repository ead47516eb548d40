"""The bounded repair loop: classify → plan → apply to a copy → re-run → keep only what helps.

Repairs change the options the stages run with (or add a source patch applied to a working copy
of the model folder); the pipeline's content keys make every attempt re-run from the first stage
the change touches. An attempt is kept only if it gets further or scores better on the stage
that failed. Bounds: attempts, wall time, and patience (attempts in a row without progress).
Rules come first; the LLM agent, when configured, gets what the rules could not fix.
"""

from __future__ import annotations

import difflib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from bot.pipeline import Pipeline, RunOutcome
from bot.pipeline.manifest import update_section
from bot.records import Failure, FailureKind
from bot.repair.catalogue import Repair, RepairState, all_repairs
from bot.repair.localize import divergent
from bot.repair.taxonomy import classify

PATIENCE = 3  # attempts in a row that change nothing before the loop gives up
MIN_GAIN = 1e-3  # a metric gain smaller than this is noise, not progress

# which levels answer which failure class, in the order they are tried: the repairs that answer
# the refused op itself (graph rules, a skill's source fix) before the generic ones
LEVEL_ORDER: dict[FailureKind, tuple[str, ...]] = {
    FailureKind.EXPORT_ERROR: ("export", "source"),
    FailureKind.OP_REJECTED: ("graph", "source", "export", "quant"),
    FailureKind.UNSUPPORTED_DTYPE: ("graph", "source", "export"),
    FailureKind.DYNAMIC_SHAPE: ("export", "graph", "source"),
    FailureKind.COMPILE_ERROR: ("graph", "source", "export", "quant"),
    FailureKind.ACCURACY: ("graph", "quant", "source"),  # graph rules only where the device diverges
    FailureKind.TOOL_ERROR: ("export", "quant"),
}


@dataclass
class Attempt:
    n: int
    repair: str
    level: str
    reason: str  # the failure it answered
    signature: str
    kept: bool
    diff: str
    before: dict
    after: dict
    seconds: float


@dataclass
class LoopResult:
    outcome: RunOutcome
    state: RepairState
    attempts: list[Attempt] = field(default_factory=list)
    stopped: str = ""
    localization: dict | None = None
    agent: dict | None = None


def unavailable_repairs() -> dict[str, str]:
    """Repairs this machine cannot run (an optional install missing) → why; never proposed."""
    return {r.id: why for r in all_repairs().values() if r.unavailable is not None and (why := r.unavailable())}


def score(outcome: RunOutcome) -> tuple[float, float]:
    """Higher is better: stages passed, then how close the failing stage came."""
    passed = sum(1 for r in outcome.results if r.passed)
    if outcome.passed:
        return (passed, math.inf)
    f = outcome.failure
    if f is None:
        return (passed, -math.inf)
    if f.kind == FailureKind.ACCURACY:
        cos = [m.get("cosine") for m in f.details.get("metrics", {}).values()]
        cos = [c if isinstance(c, (int, float)) and not math.isnan(c) else -2.0 for c in cos]
        return (passed, min(cos) if cos else -2.0)
    if f.nodes or f.details.get("fallback_nodes"):
        return (passed, -float(len(f.nodes) or len(f.details.get("fallback_nodes", []))))
    return (passed, -math.inf)


def improves(new: tuple[float, float], old: tuple[float, float]) -> bool:
    if new[0] != old[0]:
        return new[0] > old[0]
    return new[1] > old[1] + MIN_GAIN


def summarize(outcome: RunOutcome) -> dict:
    d = {"passed": outcome.passed, "reached": outcome.results[-1].stage if outcome.results else None}
    if outcome.failure:
        d["failure"] = f"{outcome.failure.kind.value}: {outcome.failure.message}"[:300]
    v = outcome.result("validate")
    metrics = v.metrics.get("outputs") if v else (outcome.failure.details.get("metrics") if outcome.failure else None)
    if metrics:
        d["cosine"] = {k: m.get("cosine") for k, m in metrics.items()}
        d["sqnr_db"] = {k: m.get("sqnr_db") for k, m in metrics.items()}
    c = outcome.result("compat")
    if c and "fallback_nodes" in c.metrics:
        d["fallback_nodes"] = c.metrics["fallback_nodes"]
    return d


def output_producers(outcome: RunOutcome) -> dict[str, str]:
    """Op type that produces each output of the run's optimized graph (read without weights)."""
    if "optimize" not in outcome.dirs:
        return {}
    import onnx

    g = onnx.load(str(outcome.dirs["optimize"] / "model.onnx"), load_external_data=False).graph
    made_by = {o: n.op_type for n in g.node for o in n.output}
    return {o.name: made_by.get(o.name, "") for o in g.output}


def options_diff(before: RepairState, after: RepairState) -> str:
    a = json.dumps(before.options, indent=2, sort_keys=True).splitlines()
    b = json.dumps(after.options, indent=2, sort_keys=True).splitlines()
    text = "\n".join(difflib.unified_diff(a, b, "options (before)", "options (after)", lineterm=""))
    new_patches = after.patches[len(before.patches):]
    return "\n".join([text] + new_patches).strip()


class RepairLoop:
    def __init__(self, spec, model_dir: Path, out_dir: Path, backend, *, events=None,
                 say: Callable[[str], None] = lambda m: None, workflow: list[str] | None = None,
                 exclude: list[str] | None = None):
        self.spec, self.model_dir, self.out_dir, self.backend = spec, Path(model_dir), Path(out_dir), backend
        self.workflow = workflow
        self.exclude = set(exclude or [])  # repairs a reviewer reverted (`/aipc revert <id>`)
        self.events, self.say = events, say
        self.limits = spec.limits
        self._localized: dict[str, list] = {}

    # -- running one state -------------------------------------------------------------------
    def run_state(self, state: RepairState) -> RunOutcome:
        folder = self.model_dir
        if state.patches:
            from bot.repair.patches import working_copy
            from bot.store import WORK, sha256_json

            dest = self.out_dir / WORK / f"src-{sha256_json(state.patches)[:16]}"
            folder = dest if dest.exists() else working_copy(self.model_dir, state.patches, dest)
        return Pipeline(self.spec, folder, self.out_dir, self.backend, workflow=self.workflow,
                        events=self.events).run(state.options)

    def localize(self, outcome: RunOutcome, on_device: bool = False) -> list:
        """Per-layer errors of the run's quantized graph against its float graph (cached per run);
        `on_device` also runs it on the backend, to tell device numerics from quantization error."""
        if "quantize" not in outcome.dirs or "optimize" not in outcome.dirs:
            return []
        key = f"{outcome.dirs['quantize']}:{on_device}"
        if key not in self._localized:
            from bot import samples as S
            from bot.repair.localize import localize

            q = outcome.result("quantize")
            if q is None or q.metrics.get("precision") == "fp16":
                self._localized[key] = []
            else:
                runner = getattr(self.backend, "run_graph", None) if on_device else None
                device = (lambda m, f: runner(m, f, self.spec.target)) if runner else None
                samples = S.load(outcome.dirs["load"] / "samples.npz")
                layers, _ = localize(outcome.dirs["optimize"] / "model.onnx", outcome.dirs["quantize"] / "model.onnx",
                                     samples[:1] if device else samples, device=device)
                self._localized[key] = layers
        return self._localized[key]

    # -- the loop ----------------------------------------------------------------------------
    def plan(self, failure: Failure, state: RepairState, best: RunOutcome) -> list[tuple[Repair, RepairState]]:
        ctx = {"spec": self.spec, "model_dir": self.model_dir, "localize": lambda: self.localize(best),
               "divergent": lambda: divergent(self.localize(best, on_device=True)),
               "output_producers": lambda: output_producers(best), "params": {}}
        order = LEVEL_ORDER.get(failure.kind, ())
        repairs = sorted((r for r in all_repairs().values()
                          if failure.kind in r.answers and r.level in order and r.id not in self.exclude),
                         key=lambda r: order.index(r.level))
        out = []
        for r in repairs:
            new = r.propose(failure, state, ctx)
            if new is not None:
                out.append((r, new))
        return out

    def run(self, first: RunOutcome) -> LoopResult:
        best, state = first, RepairState()
        result = LoopResult(first, state)
        tried = {json.dumps(state.options, sort_keys=True)}
        t_start, idle = time.monotonic(), 0
        while not best.passed:
            if len(result.attempts) >= self.limits.repair_attempts:
                result.stopped = f"attempt limit ({self.limits.repair_attempts})"
                break
            if time.monotonic() - t_start > self.limits.wall_seconds:
                result.stopped = f"wall-time limit ({self.limits.wall_seconds:.0f} s)"
                break
            if idle >= PATIENCE:
                result.stopped = f"no progress in {PATIENCE} attempts"
                break
            failure = classify(best.failure)
            candidates = [(r, s) for r, s in self.plan(failure, state, best)
                          if json.dumps([s.options, s.patches], sort_keys=True) not in tried]
            if not candidates:
                result.stopped = f"no known repair for {failure.kind.value} at {failure.stage}"
                break
            repair, cand = candidates[0]
            tried.add(json.dumps([cand.options, cand.patches], sort_keys=True))
            self.say(f"repair {len(result.attempts) + 1}: {repair.id} ({repair.level}) for {failure.kind.value} "
                     f"at {failure.stage}")
            t0 = time.perf_counter()
            outcome = self.run_state(cand)
            kept = improves(score(outcome), score(best))
            result.attempts.append(Attempt(
                n=len(result.attempts) + 1, repair=repair.id, level=repair.level,
                reason=f"{failure.kind.value} at {failure.stage}: {failure.message}"[:400],
                signature=failure.signature(), kept=kept, diff=options_diff(state, cand),
                before=summarize(best), after=summarize(outcome), seconds=round(time.perf_counter() - t0, 3)))
            self.say(f"  → {'kept' if kept else 'discarded'}: "
                     f"{'passed' if outcome.passed else (outcome.failure.message if outcome.failure else '')}"[:200])
            if kept:
                best, state, idle = outcome, cand, 0
            else:
                idle += 1
        if best.passed and not result.stopped:
            result.stopped = "passed" if result.attempts else "passed without repair"
        result.outcome, result.state = best, state
        return result

    def finish(self, result: LoopResult) -> RunOutcome:
        """Re-publish the best state (all cached) and record attempts and localization."""
        changed = result.state.options or result.state.patches
        final = self.run_state(result.state) if changed else result.outcome
        result.outcome = final
        if final.failure and final.failure.kind == FailureKind.ACCURACY or any(a.level == "quant" for a in result.attempts):
            from bot.repair.localize import as_manifest, localize

            layers = self.localize(final, on_device=True)
            if layers:
                first_bad = next((e for e in layers if not (e.cosine >= 0.99)), None)
                result.localization = as_manifest(layers, first_bad)
        update_section(self.out_dir, "localization", result.localization)
        update_section(self.out_dir, "repairs", [asdict(a) for a in result.attempts])
        update_section(self.out_dir, "reverted", sorted(self.exclude))
        update_section(self.out_dir, "repairs_unavailable", unavailable_repairs() or None)
        update_section(self.out_dir, "repair_state", {"options": result.state.options,
                                                      "patches": len(result.state.patches),
                                                      "stopped": result.stopped})
        from bot.store import read_json

        final.manifest = read_json(self.out_dir / "manifest.json") or final.manifest
        return final
