"""One night, top to bottom: for every deployment, baseline → re-compile → compare → history; then report.

`run_nightly` returns a `NightlyResult` (nothing posted, nothing printed); `post_issue` puts the report
in the one issue the nightly keeps. `bot.cli_actions.nightly_command` is the CLI's thin wrapper.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bot.errors import BadInput
from bot.forge.git import Repo
from bot.forge.github import GitHubForge
from bot.nightly import baseline as B
from bot.nightly import history as H
from bot.nightly.figures import empty, from_manifest
from bot.nightly.report import MARKER, TITLE, render
from bot.nightly.rules import Regression, Tolerances, compare, toolchain_changes
from bot.nightly.shards import MANIFEST
from bot.manifest import Manifest
from bot.parts import parts
from bot.spec import load_spec
from bot.spec.expand import expand


@dataclass
class Unit:
    """One compiled graph: one part of a deployment (`bot.parts`; a single graph is its only part)."""

    label: str  # the model's name, or `<model>/<part dir>`
    model: str
    part: str  # the part's folder in the deployment ("" for a single graph)
    dep: Path


@dataclass
class NightlyResult:
    run_id: str
    ref: str
    baseline: str  # what the figures were compared with, for the report's first line
    total: int = 0
    regressions: list[Regression] = field(default_factory=list)
    unchanged: int = 0
    new: list[str] = field(default_factory=list)
    versions: dict = field(default_factory=dict)  # tonight's backend versions
    toolchain: dict = field(default_factory=dict)  # model → [{name, baseline, now}] that changed
    history: list[dict] = field(default_factory=list)
    history_path: Path | None = None
    entries: list[dict] = field(default_factory=list)  # tonight's history lines (a shard's are recorded by the merge)
    deployments: list[str] = field(default_factory=list)  # the folders under deployments/ re-checked

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)


def find_model_dir(root: Path, name: str) -> Path | None:
    """The model folder a deployment came from: `models/<name>`, else any aipc.yaml naming it."""
    import yaml  # deferred: yaml only when a definition file is read or written

    guess = root / "models" / name
    if (guess / "aipc.yaml").is_file():
        return guess
    for spec in sorted(root.glob("**/aipc.yaml")):
        if "deployments" in spec.parts or ".work" in spec.parts:
            continue
        try:
            if (yaml.safe_load(spec.read_text()) or {}).get("name") == name:
                return spec.parent
        except (OSError, yaml.YAMLError):
            continue
    return None


def units(root: Path, only: list[str] | None = None) -> list[Unit]:
    """Every part of every deployment under `<root>/deployments/` (or the folders named in `only`, a
    shard's share)."""
    out = []
    manifests = sorted((root / "deployments").glob(f"*/{MANIFEST}"))
    if only is not None:
        have = {mf.parent.name for mf in manifests}
        missing = sorted(set(only) - have)
        if missing:
            raise BadInput(f"no deployment {', '.join(map(repr, missing))} under deployments/",
                           where=str(root / "deployments"), hint=f"known: {', '.join(sorted(have)) or 'none'}")
        manifests = [mf for mf in manifests if mf.parent.name in set(only)]
    for mf in manifests:
        dep = mf.parent
        m = Manifest.read(mf) or Manifest()
        name = m.model_or(dep.name)
        out += [Unit(f"{name}/{p.dir}" if p.dir else name, name, p.dir, dep / p.dir) for p in parts(m)
                if p.dir is not None]
    return out


def _failure(label: str, what: str, why: str) -> Regression:
    return Regression(label, "failure", what, ("nightly",), "checked", "not checked", "", "must be re-checked", why)


def recheck_unit(root: Path, unit: Unit, *, backends_cache: dict, say: Callable[[str], None]) -> dict:
    """Tonight's figures for one unit, with the backend its definition targets (raises BadInput)."""
    from bot import backends  # deferred: the toolchain (numpy, the stages) only where a shard re-checks; the aggregate job merges without it
    from bot.nightly.recompile import recheck  # deferred: as above

    folder = find_model_dir(root, unit.model)
    if folder is None:
        raise BadInput(f"no model folder with aipc.yaml for {unit.model!r} under {root}", where=str(unit.dep))
    spec, folder = load_spec(folder)
    if unit.part:
        spec = next((p.spec for p in expand(spec) if p.rel == unit.part), None)
        if spec is None:
            raise BadInput(f"the definition no longer has the part {unit.part!r}", where=str(folder / "aipc.yaml"))
    engine = spec.target.engine
    if engine not in backends_cache:
        backends_cache[engine] = backends.for_target(spec.target)
    return recheck(spec, folder, unit.dep, backends_cache[engine], say=say)


def run_nightly(root: Path, *, ref: str = "main", tolerances: Tolerances | None = None, run_id: str | None = None,
                history_path: Path | None = None, recheck: Callable | None = None,
                say: Callable[[str], None] = lambda m: None, only: list[str] | None = None,
                record: bool = True) -> NightlyResult:
    """Re-check every deployment (or those in `only`) and compare with `ref`. `recheck(root, unit) -> figures`
    is replaceable for tests of the flow; the default rebuilds for real (`bot.nightly.recompile`).
    `record=False` (a shard) leaves the history file alone: tonight's lines stay in `entries` for the merge."""
    root = Path(root).resolve()
    todo = units(root, only)
    if not todo:
        raise BadInput("no deployments to re-check", where=str(root / "deployments"))
    tol = tolerances or Tolerances()
    commit = B.resolve_ref(root, ref)
    in_git = B.resolve_ref(root, "HEAD") is not None
    if commit:
        described = f"`{ref}` ({commit[:8]})"
    elif in_git:
        described = f"the working tree (`{ref}` not found in this repository)"
    else:
        described = "the working tree (not a git repository)"
    res = NightlyResult(run_id or H.default_run_id(), ref, described,
                        history_path=Path(history_path) if history_path else root / "deployments" / H.FILE)
    cache: dict = {}
    recheck = recheck or (lambda r, u: recheck_unit(r, u, backends_cache=cache, say=say))
    entries = []
    for unit in todo:
        rel = unit.dep.relative_to(root) / MANIFEST
        base = B.load(root, rel.as_posix(), ref if commit else None, commit)
        say(f"{unit.label}: re-compiling and re-validating")
        failed = None
        try:
            now = recheck(root, unit)
        except BadInput as e:  # no model folder, a part gone from the definition, no backend here
            now, failed = empty(), _failure(unit.label, "re-check", e.paragraph())
        res.total += 1
        res.versions.update(now.get("versions") or {})
        if base.manifest is None:
            res.new.append(unit.label)
            rows = [failed] if failed else []
        else:
            accepted = from_manifest(base.manifest)
            rows = [failed] if failed else compare(unit.label, accepted, now, tol)
            res.toolchain[unit.label] = toolchain_changes(accepted["versions"], now.get("versions") or {})
            res.unchanged += not rows
        res.regressions += rows
        entries.append(H.entry(res.run_id, unit.label, now, baseline=base.source,
                               regressions=[r.metric for r in rows]))
    res.entries = entries
    res.deployments = sorted({u.dep.name for u in todo})
    res.history = H.record(res.history_path, entries) if record else H.merged(H.read(res.history_path), entries)
    return res


def publish_night(root: Path, result: NightlyResult, *, out_file: Path | None = None, post: str = "none",
                  echo: Callable[[str], None] = print, forge=None, recorded: bool = True) -> int:
    """The report of one night (a whole run, a shard's share, or the merge of every shard): stdout,
    `out_file`, `$GITHUB_STEP_SUMMARY` once, and with `post="issue"` the one issue. Returns the exit code."""


    text = render(result)
    if out_file:
        Path(out_file).write_text(text)
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step and not (out_file and Path(out_file).resolve() == Path(step).resolve()):  # `--summary $GITHUB_STEP_SUMMARY`
        with open(step, "a") as f:
            f.write(text + "\n")
    echo(text)
    echo(f"history: {result.history_path}" if recorded else "history: left to `aipc nightly-merge`")
    if post == "issue":
        issue = post_issue(root, text, result.regressed, forge=forge)
        echo(f"issue: {issue.action} {issue.url}" if issue.number else "issue: none open, nothing to close")
    return 1 if result.regressed else 0


def post_issue(root: Path, text: str, regressed: bool, *, forge=None):
    """Open or update the nightly's issue while something regresses; close it (with the all-clear
    report as its last body) once nothing does."""

    if forge is None:
        forge = GitHubForge(Repo(Path(root)))
    return forge.upsert_issue(TITLE, MARKER, text, open=regressed)
