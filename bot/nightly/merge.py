"""A shard's results as a file, and the merge of every shard into the one night the report describes.

Each shard job of `nightly.yml` re-checks its share (`aipc nightly --deployments … --results FILE`) and
uploads FILE as an artifact; the aggregate job downloads them all and runs `aipc nightly-merge FILE…`,
which records the history **once** (every shard's lines in one write, idempotent per run id as always),
renders one report and keeps the one regressions issue. A shard never writes the history or the issue,
so shards that run at the same time on different runners cannot race for either.
"""

from __future__ import annotations

import json
from pathlib import Path

from bot.deployment_dir import repo_root
from bot.errors import BadInput
from bot.nightly import history as H
from bot.nightly.figures import empty
from bot.nightly.rules import Regression
from bot.nightly.run import NightlyResult
from bot.nightly.run import publish_night

FORMAT = "aipc-nightly-shard/1"


def write(result: NightlyResult, path: Path, *, shard: str = "") -> Path:
    """Everything the merge needs from one shard, as JSON (NaN kept: a collapsed output stays one)."""
    data = {"format": FORMAT, "shard": shard, "run_id": result.run_id, "ref": result.ref,
            "baseline": result.baseline, "total": result.total, "unchanged": result.unchanged, "new": result.new,
            "versions": result.versions, "toolchain": result.toolchain, "deployments": result.deployments,
            "regressions": [r.to_dict() for r in result.regressions], "entries": result.entries}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True))
    return path


def read(path: Path) -> NightlyResult:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BadInput(f"cannot read the shard's results: {e}", where=str(path)) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadInput(f"not a nightly shard's results (expected format {FORMAT!r})", where=str(path),
                       hint="write them with `aipc nightly --results FILE`")
    res = NightlyResult(data["run_id"], data["ref"], data["baseline"], total=data["total"],
                        unchanged=data["unchanged"], new=list(data["new"]), versions=dict(data["versions"]),
                        toolchain=dict(data["toolchain"]), entries=list(data["entries"]),
                        deployments=list(data["deployments"]))
    res.regressions = [Regression(**{**r, "path": tuple(r["path"])}) for r in data["regressions"]]
    return res


def merge(paths: list[Path], *, history_path: Path, expected: list[str] | None = None) -> NightlyResult:
    """One night from its shards: the same run, each deployment in exactly one shard; history recorded once.
    A deployment in `expected` (the plan) that no shard reported (its job crashed, timed out, or never got
    a runner) is a failure row of its own, never a silent gap."""
    if not paths and not expected:
        raise BadInput("no shard results to merge", where="nightly-merge",
                       hint="the shard jobs upload them as artifacts; download them all before merging")
    parts = [(Path(p), read(p)) for p in sorted(paths)]
    runs = sorted({r.run_id for _, r in parts}) or [H.default_run_id()]
    if len(runs) > 1:
        raise BadInput(f"the shards belong to different runs ({', '.join(runs)}); one merge is one night",
                       where=", ".join(str(p) for p, _ in parts))
    owner: dict[str, Path] = {}
    for p, r in parts:
        for dep in r.deployments:
            if dep in owner:
                raise BadInput(f"deployment {dep!r} was re-checked by two shards ({owner[dep]} and {p})",
                               where=str(p), hint="every shard of one plan has a share of its own")
            owner[dep] = p
    baselines = list(dict.fromkeys(r.baseline for _, r in parts))  # shards may have resolved main apart
    ref = parts[0][1].ref if parts else "main"
    night = NightlyResult(runs[0], ref, "; ".join(baselines) or "no shard reported", history_path=Path(history_path))
    for _, r in parts:
        night.total += r.total
        night.unchanged += r.unchanged
        night.new += r.new
        night.versions.update(r.versions)
        night.toolchain.update(r.toolchain)
        night.regressions += r.regressions
        night.entries += r.entries
        night.deployments += r.deployments
    for dep in sorted(set(expected or []) - set(owner)):
        night.total += 1
        night.regressions.append(Regression(dep, "failure", "re-check", ("nightly",), "checked", "not checked", "",
                                            "must be re-checked", "its shard uploaded no results (the shard "
                                            "job failed, timed out or found no runner with its labels)"))
        night.entries.append(H.entry(night.run_id, dep, empty(), baseline="", regressions=["re-check"]))
    night.regressions.sort(key=lambda g: g.model)  # the report reads the same however the plan split it
    night.new.sort()
    night.deployments.sort()
    night.history = H.record(night.history_path, night.entries)
    return night


def merge_command(paths: list[Path], *, root: Path | None = None, history: Path | None = None,
                  out_file: Path | None = None, post: str = "none", expected: list[str] | None = None,
                  echo=print, forge=None) -> int:
    """`aipc nightly-merge`: the aggregate job. Exit 1 when any shard found a regression."""

    if post not in ("none", "issue"):
        raise BadInput(f"--post {post!r}: expected issue or none", where="--post")
    root = Path(root) if root else (repo_root(Path.cwd()) or Path.cwd())
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.rglob("*.json"))
        elif p.exists() or expected is None:  # read() names a missing file; with a plan, nothing came
            files.append(p)
    night = merge(files, history_path=Path(history) if history else root / "deployments" / H.FILE,
                  expected=expected)
    echo(f"merged {len(files)} shard(s): {night.total} deployment unit(s)")
    return publish_night(root, night, out_file=out_file, post=post, echo=echo, forge=forge)
