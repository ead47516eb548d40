"""The bounded repair loop: classify → plan → apply to a copy → re-run → keep only what helps.

Repairs change the options the stages run with (or add a source patch applied to a working copy
of the model folder); the pipeline's content keys make every attempt re-run from the first stage
the change touches. An attempt is kept only if it gets further or scores better on the stage
that failed. Bounds: attempts, wall time, and patience (attempts in a row without progress).
Rules come first; the LLM agent, when configured, gets what the rules could not fix.

The budget goes where it can act: a repair that would change nothing (a graph rule with no match
in the graph, a precision change for a node the compat stage refused on the float graph) is not
proposed; quantization repairs are ordered by where the error is (weights or activations, measured
on the CPU QDQ simulation); a failure a discarded repair exposed is answered by its known fix on
top of it; and the last attempts are kept for the precisions not yet tried (w8a8 → w8a16 → fp16),
so the loop never stops at its attempt limit while a higher precision might meet the bar.
Before an attempt reaches the device, the candidates the CPU QDQ simulation can judge are screened
there, held to the device's bar, and composed there when one repair is not enough, so one device
attempt runs what would otherwise take several.
"""

from __future__ import annotations

import difflib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from bot import samples as S
from bot.pipeline import Pipeline, RunOutcome
from bot.manifest import Manifest
from bot.pipeline.manifest import update_section
from bot.records import Failure, FailureKind
from bot.repair import attribution as attribution_lib
from bot.repair.base import Repair
from bot.repair.catalogue import all_repairs
from bot.repair.figures import step_figures
from bot.repair.patches import working_copy
from bot.repair.score import Score, TaskShortfall, score, task_failing, worst_cosine
from bot.repair.state import RepairState
from bot.repair.taxonomy import classify
from bot.stage_options import QuantizeOptions
from bot.stages.validate import OutputVerdict, judge_outputs, sample_names
from bot.stages.validate import output_producers as output_producers_of
from bot.store import WORK, read_json, sha256_json
from bot.targets import SOCS

PRECISION_LADDER = ("w8a8", "w8a16", "fp16")  # cheapest first; each step costs latency and size
PRECISION_REPAIR = {"w8a16": "w8a16-all", "fp16": "fp16-precision"}  # the repair that climbs to it
# the order of the quantization repairs by where the error is: the specific fixes first (they answer
# a signature), then the half that carries the error, then the other, fp16 last (it changes the
# deployed precision); repairs not named here keep their catalogue order, before fp16
QUANT_ORDER = {
    "activations": ("signed-weights", "keep-tiny-ranges", "int16-localized", "w8a16-all", "per-channel-weights",
                    "calibration-percentile", "fp16-precision"),
    "weights": ("signed-weights", "keep-tiny-ranges", "per-channel-weights", "int16-localized", "w8a16-all",
                "calibration-percentile", "fp16-precision"),
}
SCREEN_TIE = 1e-3  # host scores this close rank as equal: the cheaper (earlier) candidate wins
SCREEN_STEPS = 3  # repairs the screen may compose on top of its winner before the device runs it

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
    improved: bool = False  # the run got further or scored better than the best before it
    follows: str = ""  # the discarded repair this one was combined with (a follow-up)
    composed: list[str] = field(default_factory=list)  # repairs the CPU screen put on top, run in this attempt


@dataclass
class LoopResult:
    outcome: RunOutcome
    state: RepairState
    attempts: list[Attempt] = field(default_factory=list)
    stopped: str = ""
    localization: dict | None = None
    agent: dict | None = None
    attribution: dict | None = None  # weights vs activations, when it ordered the quant repairs
    screened: list[dict] = field(default_factory=list)


def unavailable_repairs() -> dict[str, str]:
    """Repairs this machine cannot run (an optional install missing) → why; never proposed."""
    return {r.id: why for r in all_repairs().values() if r.unavailable is not None and (why := r.unavailable())}


def summarize(outcome: RunOutcome) -> dict:
    d = {"passed": outcome.passed, "reached": outcome.results[-1].stage if outcome.results else None}
    if outcome.failure:
        d["failure"] = f"{outcome.failure.kind.value}: {outcome.failure.message}"[:300]
    v = outcome.result("validate")
    metrics = v.metrics.get("outputs") if v else (outcome.failure.details.get("metrics") if outcome.failure else None)
    if metrics:
        d["cosine"] = {k: m.get("cosine") for k, m in metrics.items()}
        d["sqnr_db"] = {k: m.get("sqnr_db") for k, m in metrics.items()}
    task = TaskShortfall.from_metrics(v.metrics.get("task")) if v else None
    if task and task.failing:
        d["task_failing"] = dict(task.values)
    c = outcome.result("compat")
    if c and "fallback_nodes" in c.metrics:
        d["fallback_nodes"] = c.metrics["fallback_nodes"]

    d.update(step_figures(outcome))  # precision, technique, latency, binary size: the report's step table
    return d


def output_producers(outcome: RunOutcome) -> dict[str, str]:
    """Op type that produces each output of the run's optimized graph (read without weights)."""
    if "optimize" not in outcome.dirs:
        return {}
    return {name: p.op for name, p in output_producers_of(outcome.dirs["optimize"] / "model.onnx").items()}


def state_key(state: RepairState) -> str:
    """What makes two states the same attempt: their options and patches."""
    return json.dumps([state.options, state.patches], sort_keys=True)


def options_diff(before: RepairState, after: RepairState) -> str:
    a = json.dumps(before.options, indent=2, sort_keys=True).splitlines()
    b = json.dumps(after.options, indent=2, sort_keys=True).splitlines()
    text = "\n".join(difflib.unified_diff(a, b, "options (before)", "options (after)", lineterm=""))
    new_patches = after.patches[len(before.patches):]
    return "\n".join([text] + new_patches).strip()


def option_delta(before: RepairState, after: RepairState) -> tuple[dict, list[str]]:
    """What a repair changed: (stage, key) → new value, and the patches it added."""
    changed = {}
    for stage, knobs in after.options.items():
        for k, v in knobs.items():
            if before.options.get(stage, {}).get(k) != v:
                old = before.options.get(stage, {}).get(k)
                if isinstance(v, list) and isinstance(old, list):
                    v = [i for i in v if i not in old]
                elif isinstance(v, dict) and isinstance(old, dict):
                    v = {i: x for i, x in v.items() if old.get(i) != x}
                changed[f"{stage}.{k}"] = v
    return changed, after.patches[len(before.patches):]


def holds(state: RepairState, delta: tuple[dict, list[str]]) -> bool:
    """Does the state still contain a repair's change (a later one may have replaced it)?"""
    changed, patches = delta
    for dotted, v in changed.items():
        stage, k = dotted.split(".", 1)
        have = state.options.get(stage, {}).get(k)
        if isinstance(v, list):
            ok = isinstance(have, list) and all(i in have for i in v)
        elif isinstance(v, dict):
            ok = isinstance(have, dict) and all(have.get(i) == x for i, x in v.items())
        else:
            ok = have == v
        if not ok:
            return False
    return all(p in state.patches for p in patches)


class RepairLoop:
    def __init__(self, spec, model_dir: Path, out_dir: Path, backend, *, events=None,
                 say: Callable[[str], None] = lambda m: None, workflow: list[str] | None = None,
                 exclude: list[str] | None = None):
        self.spec, self.model_dir, self.out_dir, self.backend = spec, Path(model_dir), Path(out_dir), backend
        self.workflow = workflow
        self.exclude = set(exclude or [])  # repairs a reviewer reverted (`/aipc revert <id>`)
        self.events, self.say = events, say
        self.limits = spec.limits
        self.started = time.time()  # the whole run's wall time starts here (repairs included)
        self._localized: dict[str, list] = {}
        self._rewrites: dict[str, int | None] = {}
        self._attributions: dict[str, object] = {}
        self._attribution_used: dict | None = None
        self._host_runs: dict[str, RunOutcome] = {}  # state key → its screened run (stopped after quantize)
        self._composed: dict[str, list[str]] = {}  # state key → repairs the screen put on top of its first
        self.notes: list[str] = []  # what the planner could not compute (kept in the manifest)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            self.say(text)

    # -- running one state -------------------------------------------------------------------
    def folder_of(self, state: RepairState) -> Path:
        """The model folder a state runs from: the definition's, or a working copy with its patches."""
        if not state.patches:
            return self.model_dir
        dest = self.out_dir / WORK / f"src-{sha256_json(state.patches)[:16]}"
        return dest if dest.exists() else working_copy(self.model_dir, state.patches, dest)

    def run_state(self, state: RepairState, stop_after: str | None = None) -> RunOutcome:
        return Pipeline(self.spec, self.folder_of(state), self.out_dir, self.backend, workflow=self.workflow,
                        events=self.events).run(state.stage_options, stop_after=stop_after)

    def localize(self, outcome: RunOutcome, on_device: bool = False) -> list:
        """Per-layer errors of the run's quantized graph against its float graph (cached per run);
        `on_device` also runs it on the backend, to tell device numerics from quantization error."""
        if "quantize" not in outcome.dirs or "optimize" not in outcome.dirs:
            return []
        key = f"{outcome.dirs['quantize']}:{on_device}"
        if key not in self._localized:
            from bot.repair.localize import localize  # deferred: localization imports onnx (~0.4 s), only when a repair runs

            q = outcome.result("quantize")
            if q is None or q.metrics.get("precision") == "fp16":
                self._localized[key] = []
            else:
                runner = getattr(self.backend, "run_graph", None) if on_device else None
                device = (lambda m, f: runner(m, f, self.spec.target)) if runner else None
                samples = S.load(outcome.dirs["load"] / "samples.npz")
                try:
                    layers, _ = localize(outcome.dirs["optimize"] / "model.onnx",
                                         outcome.dirs["quantize"] / "model.onnx",
                                         samples[:1] if device else samples, device=device)
                except Exception as e:  # noqa: BLE001 — localization informs the plan; it must not end the run
                    self.note(f"localization could not run: {type(e).__name__}: {str(e)[:300]}")
                    layers = []
                self._localized[key] = layers
        return self._localized[key]

    # -- what a repair would do here ----------------------------------------------------------
    def rewrite_count(self, outcome: RunOutcome, rule_id: str) -> int | None:
        """How many rewrites a graph rule would make on the run's optimized graph (None: unknown),
        so a rule that matches nothing is not proposed and costs no attempt."""
        if outcome is None or "optimize" not in outcome.dirs:
            return None
        key = f"{outcome.dirs['optimize']}:{rule_id}"
        if key not in self._rewrites:
            import onnx  # deferred with the next: a dry run is the only use here

            from bot.graph.rules import apply_rewrites  # deferred: loads onnxscript's rewriter

            try:
                model = onnx.load(str(outcome.dirs["optimize"] / "model.onnx"))
                self._rewrites[key] = apply_rewrites(model, [rule_id])[1].get(rule_id, 0)
            except Exception:  # noqa: BLE001 — a rule that cannot be dry-run is left to the real run
                self._rewrites[key] = None
        return self._rewrites[key]

    def attribution(self, outcome: RunOutcome):
        """Weights vs activations on the CPU QDQ simulation of the run's quantized graph (cached)."""
        q = outcome.result("quantize") if outcome is not None else None
        if q is None or q.metrics.get("precision") == "fp16" or "quantize" not in outcome.dirs:
            return None
        key = str(outcome.dirs["quantize"])
        if key not in self._attributions:
            try:
                self._attributions[key] = attribution_lib.attribute(outcome.dirs["optimize"] / "model.onnx",
                                                    outcome.dirs["quantize"] / "model.onnx",
                                                    S.load(outcome.dirs["load"] / "samples.npz"),
                                                    S.load(outcome.dirs["load"] / "golden.npz"))
            except Exception as e:  # noqa: BLE001 — without attribution the catalogue order stands
                self.note(f"weights/activations attribution could not run: {type(e).__name__}: {str(e)[:300]}")
                self._attributions[key] = None
        return self._attributions[key]

    def precision_of(self, state: RepairState) -> str:
        return state.opts(QuantizeOptions).precision_for(self.spec)

    def untried_precisions(self, state: RepairState, tried: set[str]) -> list[str]:
        """Precisions above the state's, on the ladder, that the SoC runs and no attempt has run."""

        soc = SOCS[self.spec.target.soc]
        here = self.precision_of(state)
        above = PRECISION_LADDER[PRECISION_LADDER.index(here) + 1:] if here in PRECISION_LADDER else ()
        usable = {"w8a16": soc.int16, "fp16": soc.fp16}
        return [p for p in above if usable.get(p) and p not in tried
                and PRECISION_REPAIR[p] not in self.exclude]

    def _order(self, repairs: list[Repair], failure: Failure, best: RunOutcome) -> list[Repair]:
        """Catalogue order by level; within the quant level by where the error is; then the
        definition's `limits.repair_order` ahead of everything it names."""
        catalogue = list(all_repairs())
        rank = {r.id: i for i, r in enumerate(repairs)}
        if self.limits.order == "gain" and failure.kind == FailureKind.ACCURACY and \
                any(r.level == "quant" for r in repairs):
            att = self.attribution(best)
            if att is not None:
                self._attribution_used = att.to_dict()
                order = QUANT_ORDER[att.cause]
                last = order.index("fp16-precision")
                rank = {r.id: (order.index(r.id) if r.id in order else last - 0.5 + catalogue.index(r.id) / 1e3)
                        for r in repairs}
        levels = LEVEL_ORDER.get(failure.kind, ())
        first = list(self.limits.repair_order)
        return sorted(repairs, key=lambda r: (first.index(r.id) if r.id in first else len(first),
                                              levels.index(r.level), rank[r.id]))

    # -- the loop ----------------------------------------------------------------------------
    def context(self, best: RunOutcome, on_device: bool = True) -> dict:
        """What proposals may look at; `on_device=False` for a run that stopped at quantize (the
        screen's): no device localization, so rules for device numerics are not proposed there."""
        from bot.repair.localize import divergent  # deferred: imports onnx; only a failing run is localized

        return {"spec": self.spec, "model_dir": self.model_dir, "localize": lambda: self.localize(best),
                "divergent": (lambda: divergent(self.localize(best, on_device=True))) if on_device else list,
                "output_producers": lambda: output_producers(best),
                "rewrite_count": lambda rule_id: self.rewrite_count(best, rule_id), "params": {}}

    def plan(self, failure: Failure, state: RepairState, best: RunOutcome,
             on_device: bool = True) -> list[tuple[Repair, RepairState]]:
        ctx = self.context(best, on_device)
        order = LEVEL_ORDER.get(failure.kind, ())
        repairs = [r for r in all_repairs().values()
                   if failure.kind in r.answers and r.level in order and r.id not in self.exclude]
        out = []
        for r in self._order(repairs, failure, best):
            try:
                new = r.propose(failure, state, ctx)
            except Exception as e:  # noqa: BLE001 — a repair that cannot decide is not proposed
                self.note(f"repair {r.id} could not propose: {type(e).__name__}: {str(e)[:300]}")
                new = None
            if new is not None:
                out.append((r, new))
        return out

    def climb(self, failure: Failure, state: RepairState, best: RunOutcome, to: str) -> tuple[Repair, RepairState] | None:
        """The repair that takes the state to precision `to`, as its own proposal would."""
        repair = all_repairs().get(PRECISION_REPAIR[to])
        new = repair.propose(failure, state, self.context(best)) if repair else None
        return (repair, new) if new is not None and self.precision_of(new) == to else None

    def run(self, first: RunOutcome, start: RepairState | None = None) -> LoopResult:
        """`start`: the state `first` ran with (the definition's up-front repairs), kept as the base."""
        best, state = first, start or RepairState()
        result = LoopResult(first, state)
        tried = {state_key(state)}
        ran_precisions = {self.precision_of(state)}
        followups: list[tuple[Repair, RepairState, str]] = []
        deltas: list[tuple[dict, list[str]]] = []
        limit, patience = self.limits.repair_attempts, self.limits.patience
        t_start, idle = time.monotonic(), 0
        while not best.passed:
            if len(result.attempts) >= limit:
                result.stopped = f"attempt limit ({limit})"
                break
            if time.monotonic() - t_start > self.limits.wall_seconds:
                result.stopped = f"wall-time limit ({self.limits.wall_seconds:.0f} s)"
                break
            failure = classify(best.failure)
            left = limit - len(result.attempts)
            climbable = self.untried_precisions(state, ran_precisions) if failure.kind == FailureKind.ACCURACY else []
            pick, follows = None, ""
            if climbable and (left <= len(climbable) or idle >= patience):
                # the budget's end (or patience) belongs to the precisions not yet tried: on the
                # last attempt the most accurate one, before it the next step up
                pick = self.climb(failure, state, best, climbable[-1] if left == 1 else climbable[0])
            if pick is None and idle >= patience:
                result.stopped = f"no progress in {patience} attempts"
                break
            while pick is None and followups:
                r, s_, follows = followups.pop(0)
                if state_key(s_) not in tried:
                    pick = (r, s_)
            if pick is None:
                follows = ""
                candidates = [(r, s_) for r, s_ in self.plan(failure, state, best)
                              if state_key(s_) not in tried]
                if not candidates:
                    if climbable:
                        pick = self.climb(failure, state, best, climbable[0])
                    if pick is None:
                        result.stopped = f"no known repair for {failure.kind.value} at {failure.stage}"
                        break
                else:
                    pick = self.screen(failure, candidates, result, best, tried, judge_task=task_failing(best))[0]
            repair, cand = pick
            tried.add(state_key(cand))
            ran_precisions.add(self.precision_of(cand))
            composed = self._composed.pop(state_key(cand), [])
            self.say(f"repair {len(result.attempts) + 1}: {' + '.join([repair.id] + composed)} ({repair.level}) "
                     f"for {failure.kind.value} at {failure.stage}" + (f", on top of {follows}" if follows else ""))
            t0 = time.perf_counter()
            outcome = self.run_state(cand)
            improved = score(outcome).improves_on(score(best))
            result.attempts.append(Attempt(
                n=len(result.attempts) + 1, repair=repair.id, level=repair.level,
                reason=f"{failure.kind.value} at {failure.stage}: {failure.message}"[:400],
                signature=failure.signature(), kept=improved, diff=options_diff(state, cand),
                before=summarize(best), after=summarize(outcome), seconds=round(time.perf_counter() - t0, 3),
                improved=improved, follows=follows, composed=composed))
            deltas.append(option_delta(state, cand))
            self.say(f"  → {'kept' if improved else 'discarded'}: "
                     f"{'passed' if outcome.passed else (outcome.failure.message if outcome.failure else '')}"[:200])
            if improved:
                best, state, idle = outcome, cand, 0
                followups.clear()
            else:
                idle += 1
                followups = self.followups(repair, cand, outcome, best) + followups
        if best.passed and not result.stopped:
            result.stopped = "passed" if result.attempts else "passed without repair"
        for a, delta in zip(result.attempts, deltas):  # "kept" is what the final state still holds
            a.kept = a.improved and holds(state, delta)
        result.outcome, result.state = best, state
        result.attribution = self._attribution_used
        return result

    def screen(self, failure: Failure, candidates: list[tuple[Repair, RepairState]], result: LoopResult,
               best: RunOutcome | None = None, tried: set[str] = frozenset(),
               judge_task: bool = False) -> list[tuple[Repair, RepairState]]:
        """Try the first `limits.screen` candidates whose effect the CPU QDQ simulation shows
        (`Repair.host_visible`) there, in the planned order (the order of cost) until one passes
        there, and put the best first (the cheapest among near-equals),
        so the device compiles and validates the likely winner instead of each in turn. The
        simulation's outputs are judged as validate judges the device's (every sample, packed
        parts apart: `judge_outputs`), and a candidate is ranked as attempts are
        (`bot.repair.score`): when a task check fails (`judge_task`), by that task metric too.
        A winner the simulation still fails gets what the planner proposes next for it there
        (`next_on_host`, up to SCREEN_STEPS), so one device attempt runs the composite the
        simulation says is enough instead of one attempt per step. Losers stay candidates; their
        quantize results are in the store, so screening them again costs nothing."""
        n = self.limits.screen
        workflow = self.workflow or []
        if n < 1 or failure.kind != FailureKind.ACCURACY or failure.stage != "validate" or \
                (workflow and "quantize" not in workflow):
            return candidates
        pool = [(i, r, s_) for i, (r, s_) in enumerate(candidates[:n])
                if r.host_visible and self.precision_of(s_) != "fp16"]
        if not pool or pool[0][0] != 0:  # the head's effect shows only on the device: its turn comes first
            return candidates
        scored = []
        for _, r, s_ in pool:
            scored.append((self.judge_on_host(r, s_, result, judge_task), r, s_))
            if scored[-1][0].stages:  # it passes there: the ones after it cost more and cannot rank higher
                break
        if all(t[0].closeness == -math.inf for t in scored):  # nothing measured: the planned order stands
            return candidates
        if judge_task and any(t[0].closeness != -math.inf and t[0].task is None for t in scored):
            # the task could not be judged for every candidate: compare them on the outputs alone
            judge_task = False
            scored = [(Score(t[0].stages, TaskShortfall(), t[0].closeness), t[1], t[2]) for t in scored]
        scored = [(Score(t[0].stages, t[0].task or TaskShortfall(), t[0].closeness), t[1], t[2]) for t in scored]
        # the planned order is also the order of cost (mixed before w8a16): of the candidates the
        # simulation scores about as well as the best (within SCREEN_TIE), the earliest goes first
        top = max(scored, key=lambda t: t[0].rank())[0]
        win, repair, state = next(t for t in scored if not top.improves_on(t[0], SCREEN_TIE))
        composed, run = [], self._host_runs.get(state_key(state))
        skip = set(tried) | {state_key(s_) for _, _, s_ in pool}
        while win.stages == 0 and len(composed) < SCREEN_STEPS and run is not None:
            nxt = self.next_on_host(state, run, skip, judge_task)
            if nxt is None:
                break
            r2, s2 = nxt
            skip.add(state_key(s2))
            got = self.judge_on_host(r2, s2, result, judge_task, step=len(composed) + 1)
            if got.task is None or not got.improves_on(win):
                break
            win, state, run = got, s2, self._host_runs.get(state_key(s2))
            composed.append(r2.id)
        judged = f"task figures failing {win.task.failing}, " if judge_task else ""
        verdict = "passes there" if win.stages else "still fails there"
        self.say(f"screened {len(pool)} candidate(s) on the CPU QDQ simulation: {' + '.join([repair.id] + composed)} "
                 f"first ({judged}worst sample cosine {win.closeness}; {verdict})")
        self._composed[state_key(state)] = composed
        return [(repair, state)] + [c for c in candidates if c[0] is not repair]

    def judge_on_host(self, repair: Repair, state: RepairState, result: LoopResult, judge_task: bool,
                      step: int = 0) -> Score:
        """A candidate's quantize stage run, its CPU QDQ simulation judged as validate judges the
        device. `stages` is 1 when every output and part (and the task, when judged) passes
        there, else 0; closeness the worst sample's cosine (inf when it passes, −inf when nothing
        could be measured); `task` None when the task was to be judged and could not be."""
        t0 = time.perf_counter()
        run = self.run_state(state, stop_after="quantize")
        self._host_runs[state_key(state)] = run
        verdict = self.host_verdict(run)
        if verdict is None:
            result.screened.append({"repair": repair.id, "host_cosine": None, **({"step": step} if step else {}),
                                    "seconds": round(time.perf_counter() - t0, 3)})
            return Score(0)
        task = self.host_task(run, state) if judge_task else TaskShortfall()
        passed = verdict.passed and task is not None and not task.failing
        value = worst_cosine(verdict.per_output)
        result.screened.append({"repair": repair.id, **({"step": step} if step else {}), "host_cosine": value,
                                "host_failing": verdict.failing, "host_passed": passed,
                                **({"host_task_failing": task.failing, "host_task": dict(task.values)}
                                   if judge_task and task is not None else {}),
                                "seconds": round(time.perf_counter() - t0, 3)})
        # every candidate the simulation passes is as good as any other there: the cheapest wins
        return Score(int(passed), task, math.inf if passed else value)

    def host_verdict(self, run: RunOutcome) -> OutputVerdict | None:
        """The quantize stage's CPU QDQ outputs judged against the golden ones (None: not run)."""
        q = run.result("quantize")
        if q is None or not q.passed or "host_outputs" not in q.artifacts or "quantize" not in run.dirs:
            return None
        golden = S.load(run.dirs["load"] / "golden.npz")
        host = S.load(run.dirs["quantize"] / q.artifacts["host_outputs"])
        producers = output_producers_of(run.dirs["optimize"] / "model.onnx") if "optimize" in run.dirs else {}
        return judge_outputs(self.spec, golden, host, producers, sample_names(self.spec, len(host)))

    def next_on_host(self, state: RepairState, run: RunOutcome, skip: set[str],
                     judge_task: bool) -> tuple[Repair, RepairState] | None:
        """The planner's first proposal for what the simulation of `state` still fails, at the same
        precision and visible there (silero-vad: magnitude-form on top of w8a16-all; nudenet:
        int16-localized's next share), so the device can run both in one attempt."""
        verdict = self.host_verdict(run)
        if verdict is None:
            return None
        task = self.host_task(run, state) if judge_task else None
        failure = Failure("validate", FailureKind.ACCURACY, "fails on the CPU QDQ simulation",
                          details={"failing_outputs": verdict.failing or list(verdict.per_output),
                                   "metrics": verdict.per_output,
                                   "failing_task_metrics": [name for name, _ in task.values] if task else []})
        here = self.precision_of(state)
        for r, s_ in self.plan(failure, state, run, on_device=False):
            if r.host_visible and self.precision_of(s_) == here and state_key(s_) not in skip:
                return r, s_
        return None

    def host_task(self, run: RunOutcome, state: RepairState) -> TaskShortfall | None:
        """The definition's task metrics on the CPU QDQ simulation's outputs (None: not measurable)."""
        q = run.result("quantize")
        if self.spec.task is None or q is None or "host_outputs" not in q.artifacts or "quantize" not in run.dirs:
            return None
        from bot.task import check  # deferred: the task's postprocess runs only when a task check failed

        load = run.dirs["load"]
        data = read_json(load / "data.json") or {}
        golden, host = S.load(load / "golden.npz"), S.load(run.dirs["quantize"] / q.artifacts["host_outputs"])
        try:  # only the definition's own postprocess runs in here: the bot's errors are not swallowed
            outcome = check(self.spec.task, self.folder_of(state), golden, host, data.get("labels"))
        except Exception as e:  # noqa: BLE001 — screening informs the order; it must not end the run
            self.note(f"the task could not be judged on the CPU simulation: {type(e).__name__}: {str(e)[:300]}")
            return None
        return TaskShortfall.of(outcome.results)

    def followups(self, repair: Repair, cand: RepairState, outcome: RunOutcome,
                  best: RunOutcome) -> list[tuple[Repair, RepairState, str]]:
        """A discarded repair that exposed a *different* failure with a known fix (per-channel
        weights → a bias saturating int32 → signed weights) is tried again with that fix on top."""
        if outcome.failure is None or best.failure is None or outcome.passed:
            return []
        new = classify(outcome.failure)
        if new.signature() == classify(best.failure).signature():
            return []
        out = []
        for r, s_ in self.plan(new, cand, outcome)[:1]:
            if r.id != repair.id:
                out.append((r, s_, repair.id))
        return out

    def finish(self, result: LoopResult) -> RunOutcome:
        """Restore the best run and record attempts, localization and the whole run's wall time.

        Attempts the loop discarded wrote their stage folders and manifest last; the best run's
        stored stages are linked into the folder again so it describes what was kept, not what was
        tried last. Nothing is recomputed (a failed best stage is not re-run)."""
        pipe = Pipeline(self.spec, self.model_dir, self.out_dir, self.backend, workflow=self.workflow,
                        events=self.events)
        final = pipe.restore(result.outcome, started=self.started) or self.run_state(result.state)
        result.outcome = final
        if final.failure and final.failure.kind == FailureKind.ACCURACY or any(a.level == "quant" for a in result.attempts):
            from bot.repair.localize import as_manifest, localize  # deferred: as above

            layers = self.localize(final, on_device=True)
            if layers:
                first_bad = next((e for e in layers if not (e.cosine >= 0.99)), None)
                result.localization = as_manifest(layers, first_bad)
        update_section(self.out_dir, "localization", result.localization)
        update_section(self.out_dir, "repairs", [asdict(a) for a in result.attempts])
        update_section(self.out_dir, "reverted", sorted(self.exclude))
        # only when repairs were looked for: a run that needed none leaves the catalogue (graph rules, onnxscript) unloaded
        looked = bool(result.attempts) or bool(self.spec.repairs) or not final.passed
        update_section(self.out_dir, "repairs_unavailable", (unavailable_repairs() or None) if looked else None)
        update_section(self.out_dir, "repair_state", {"options": result.state.options,
                                                      "patches": len(result.state.patches),
                                                      "stopped": result.stopped,
                                                      "attribution": result.attribution,
                                                      "screened": result.screened,
                                                      "planner_notes": self.notes})
        update_section(self.out_dir, "started", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)))
        update_section(self.out_dir, "seconds_total", round(time.time() - self.started, 3))

        written = Manifest.read(self.out_dir)
        final.manifest = written.dump() if written else final.manifest
        return final
