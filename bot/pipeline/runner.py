"""Run the stages of a workflow in order, skipping any whose key says it already ran.

A stage's key hashes the content (sha256) of every artifact the earlier stages produced, its own
name and version, the parts of the definition it declares, the model folder's files (for stages
that read them), the repair options aimed at it, and the tool versions. So an unchanged re-run skips everything, a changed threshold
re-runs only `validate`, and a repair to the optimize options re-runs from `optimize` on:
"rerun from the failing stage" falls out of the keys.
"""

from __future__ import annotations

import re
import shutil
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import yaml

from bot.errors import BadInput
from bot.pipeline import manifest as manifest_mod
from bot.pipeline.limits import StageTimeout, stage_deadline
from bot.records import Failure, FailureKind, RunOutcome, StageFailed, StageResult
from bot.stage_options import StageOptions, parse_options
from bot.stages import REGISTRY
from bot.stages.base import StageContext
from bot.store import WORK, begin, commit, link_view, read_json, sha256_file, sha256_json, store_dir, tree_digest, write_json

WORKFLOW_FILE = Path(__file__).parent / "workflow.yaml"
RESULT = "result.json"


def default_workflow() -> list[str]:
    return yaml.safe_load(WORKFLOW_FILE.read_text())["stages"]


def options_content(stage: str, options: Mapping[str, StageOptions]) -> dict[str, Any] | None:
    """What of the options joins `stage`'s key: the knobs set on it as JSON, the same JSON the untyped
    options were (so stages cached before the options were typed still hit), None when none are."""
    return options[stage].content() if stage in options else None


def _dig(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


class Events:
    """Progress hooks; the CLI renders them, tests and the repair loop may ignore them."""

    def stage_start(self, name: str, index: int, total: int) -> None: ...

    def stage_end(self, result: StageResult) -> None: ...

    def note(self, message: str) -> None: ...


class Pipeline:
    def __init__(self, spec, model_dir: Path, out_dir: Path, backend, workflow: list[str] | None = None,
                 events: Events | None = None):
        self.spec, self.model_dir, self.out_dir, self.backend = spec, Path(model_dir), Path(out_dir), backend
        self.workflow = workflow or default_workflow()
        unknown = [s for s in self.workflow if s not in REGISTRY]
        if unknown:
            raise BadInput(f"unknown stage(s) {unknown}; known: {list(REGISTRY)}", where="workflow")
        self.events = events or Events()
        self.versions = manifest_mod.tool_versions(backend.versions())
        self._files: str | None = None

    def key(self, stage_cls, upstream: dict[str, dict[str, str]], options: dict[str, StageOptions]) -> str:
        definition = self.spec.model_dump(mode="json")
        spec_parts = {path: _dig(definition, path) for path in stage_cls.depends_on}
        files = self._files_digest() if stage_cls.reads_model_files else None
        own = {f: sha256_file(self.model_dir / f) if (self.model_dir / f).is_file() else None
               for f in stage_cls.files_read(self.spec)}
        return sha256_json([upstream, stage_cls.name, stage_cls.version, spec_parts, files,
                            options_content(stage_cls.name, options), self.versions, self.backend.name]
                           + ([own] if own else []))

    def _files_digest(self) -> str:
        if self._files is None:
            self._files = tree_digest(self.model_dir)
        return self._files

    def run(self, options: Mapping[str, StageOptions | Mapping[str, Any]] | None = None,
            stop_after: str | None = None) -> RunOutcome:
        """`options`: stage → its typed options (or their content, as a manifest holds it)."""
        options = parse_options(options)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        ctx = StageContext(self.spec, self.model_dir, self.out_dir, self.backend, options=options,
                           progress=self.events.note)
        results: list[StageResult] = []
        failure, started = None, time.time()
        upstream: dict[str, dict[str, str]] = {}
        artifacts: dict[str, dict] = {}
        def write_running() -> None:
            manifest_mod.write(self.out_dir, spec=self.spec, backend=self.backend.name, versions=self.versions,
                               results=results, artifacts=artifacts, workflow=self.workflow, started=started,
                               status="running")

        written = 0  # results the manifest on disk shows
        for i, name in enumerate(self.workflow):
            cls = REGISTRY[name]
            key = self.key(cls, upstream, options)
            self.events.stage_start(name, i, len(self.workflow))
            res, where = self._cached(name, key)
            if res is None:
                if written < len(results):  # while a stage runs, the manifest shows the ones before it
                    write_running()
                res, where = self._execute(cls(), ctx, key)
            ctx.results[name], ctx.dirs[name] = res, where
            results.append(res)
            link_view(where, self.out_dir / name)
            artifacts.update(manifest_mod.artifact_table(self.out_dir, [name]))
            self.events.stage_end(res)
            if not res.cached:  # a stage that ran is on disk at once; cached ones cost nothing to redo
                write_running()
                written = len(results)
            upstream[name] = res.digests
            if not res.passed:
                failure = res.failure
                break
            if name == stop_after:
                break
        for name in self.workflow[len(results):]:  # nothing stale from an earlier, longer run
            shutil.rmtree(self.out_dir / name, ignore_errors=True)
        status = "deployed" if failure is None and len(results) == len(self.workflow) else (
            "failed" if failure else "partial")
        m = manifest_mod.write(self.out_dir, spec=self.spec, backend=self.backend.name, versions=self.versions,
                               results=results, artifacts=artifacts, workflow=self.workflow, started=started,
                               status=status)
        return RunOutcome(results, failure, self.out_dir, m, dict(ctx.dirs))

    def plan(self, options: Mapping[str, StageOptions | Mapping[str, Any]] | None = None
             ) -> list[tuple[str, str, StageResult | None]]:
        """(stage, key, its stored result or None) as `run` would find them, running nothing (`aipc plan`).
        It stops at the first stage that would run: the keys after it hash that stage's new output."""
        options, upstream, found = parse_options(options), {}, []
        for name in self.workflow:
            key = self.key(REGISTRY[name], upstream, options)
            res, _ = self._cached(name, key)
            found.append((name, key, res))
            if res is None:
                break
            upstream[name] = res.digests
        return found

    def restore(self, outcome: RunOutcome, started: float | None = None) -> RunOutcome | None:
        """Make the stage folders and the manifest describe `outcome` again (the repair loop's best
        run, after later attempts it discarded overwrote them); None when a stored stage folder of
        that run is gone, so the caller re-runs it instead."""
        dirs = {r.stage: outcome.dirs.get(r.stage) for r in outcome.results}
        if any(d is None or not (d / RESULT).is_file() for d in dirs.values()):
            return None
        artifacts: dict[str, dict] = {}
        for r in outcome.results:
            link_view(dirs[r.stage], self.out_dir / r.stage)
            artifacts.update(manifest_mod.artifact_table(self.out_dir, [r.stage]))
        for name in self.workflow[len(outcome.results):]:
            shutil.rmtree(self.out_dir / name, ignore_errors=True)
        status = "deployed" if outcome.passed and len(outcome.results) == len(self.workflow) else (
            "failed" if outcome.failure else "partial")
        m = manifest_mod.write(self.out_dir, spec=self.spec, backend=self.backend.name, versions=self.versions,
                               results=outcome.results, artifacts=artifacts, workflow=self.workflow,
                               started=started or time.time(), status=status)
        return RunOutcome(outcome.results, outcome.failure, self.out_dir, m, dict(dirs))

    def _cached(self, name: str, key: str) -> tuple[StageResult | None, Path | None]:
        folder = store_dir(self.out_dir, name, key)
        data = read_json(folder / RESULT)
        if data and data.get("key") == key and data.get("passed"):
            res = StageResult.from_dict(data)
            for n, digest in res.digests.items():  # an edited artifact is not a finished stage
                p = folder / res.artifacts[n]
                if not p.is_file() or sha256_file(p) != digest:
                    return None, None
            res.cached = True
            return res, folder
        return None, None

    def _execute(self, stage, ctx: StageContext, key: str) -> tuple[StageResult, Path]:
        work = begin(self.out_dir, stage.name, key)
        t0 = time.perf_counter()
        limit = self.spec.limits.stage_seconds
        try:
            with stage_deadline(stage.name, limit):
                res = stage.run(ctx, work)
        except StageFailed as e:
            res = StageResult(stage.name, False, checks=e.checks, metrics=e.metrics, failure=e.failure)
        except StageTimeout as e:
            res = StageResult(stage.name, False, failure=timeout_failure(stage.name, e.seconds))
        except BadInput:
            raise
        except Exception as e:  # noqa: BLE001 — no stage error escapes as a traceback
            res = StageResult(stage.name, False, failure=unexpected_failure(stage.name, e))
        if not res.passed and res.failure is None:  # a failed check must always say which
            failed = [c.name for c in res.checks if not c.passed] or ["(no check named)"]
            res.failure = Failure(stage.name, FailureKind.TOOL_ERROR, f"check(s) failed: {', '.join(failed)}")
        res.seconds, res.key = time.perf_counter() - t0, key
        res.digests = {n: sha256_file(work / rel) for n, rel in res.artifacts.items() if (work / rel).is_file()}
        write_json(work / RESULT, res.to_dict())
        return res, commit(work)


def unexpected_failure(stage: str, error: Exception) -> Failure:
    """A stage that raised instead of failing: a TOOL_ERROR with the tool's text, which the
    taxonomy refines and the repair loop can answer; the run still ends with a final status."""

    tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return Failure(stage, FailureKind.TOOL_ERROR, f"{stage} raised {type(error).__name__}: {str(error)[:300]}",
                   log=tb[-3000:], details={"exception": type(error).__name__})


WHAT_HANGS = {"load": "the model's forward (or its entry point, or the calibration generator)",
              "export": "the ONNX export", "compile": "the HTP graph preparation (context binary generation)",
              "validate": "running the compiled model on the HTP", "quantize": "calibration and quantization"}


def timeout_failure(stage: str, seconds: float) -> Failure:
    what = WHAT_HANGS.get(stage, f"the {stage} stage")
    kind = FailureKind.BAD_INPUT if stage == "load" else FailureKind.TOOL_ERROR
    return Failure(stage, kind, f"{stage}: stopped after {seconds:g} s (limits.stage_seconds): {what} did not finish",
                   details={"timeout_seconds": seconds})


def forget_from(out_dir: Path, stage: str, workflow: list[str] | None = None) -> list[str]:
    """Drop the stored results of `stage` and every stage after it, so the next run executes them
    again (`/aipc rerun <stage>`); the stages before it stay in the store and are reused."""

    workflow = workflow or default_workflow()
    if stage not in workflow:
        raise BadInput(f"unknown stage {stage!r}", where="rerun", hint=f"known stages: {', '.join(workflow)}")
    names = workflow[workflow.index(stage):]
    pattern = re.compile(rf"^({'|'.join(map(re.escape, names))})-[0-9a-f]{{16}}(\.partial)?$")
    store = Path(out_dir) / WORK
    dropped = sorted(p.name for p in store.iterdir() if pattern.match(p.name)) if store.is_dir() else []
    for name in dropped:
        shutil.rmtree(store / name, ignore_errors=True)
    return names
