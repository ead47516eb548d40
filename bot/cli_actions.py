"""What the CLI's `aipc report` and `aipc nightly` do: reports for deployments that already exist.

(PR comment commands are `bot/pr_commands.py`.) Kept out of `bot/cli.py` so the CLI stays a list of thin commands; each function returns the exit
code (0 all good, 1 something failed) and raises `BadInput` for the user's mistakes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from bot.deployment_dir import repo_root
from bot.deployment_dir import resolve_out_dir
from bot.errors import BadInput
from bot.manifest import Manifest
from bot.nightly.merge import write
from bot.nightly.rules import Tolerances
from bot.nightly.run import find_model_dir  # noqa: F401  (kept importable from here)
from bot.nightly.run import publish_night, run_nightly
from bot.pr_commands import Command
from bot.report import html_report, pr_body
from bot.spec import load_spec


def report_command(model: Path, *, out_dir: Path | None = None, html_dir: Path | None = None,
                   body_file: Path | None = None, echo: Callable[[str], None] = print) -> int:
    """Render the PR body (stdout or `body_file`) and the HTML report for an existing deployment."""

    spec, folder = load_spec(model)
    out = resolve_out_dir(folder, spec.name, out_dir)
    manifest = Manifest.read(out)
    if manifest is None:
        raise BadInput("no manifest.json: deploy this model first (aipc deploy)", where=str(out))
    data = manifest.dump()  # the report and its plots read the manifest's JSON
    html = html_report(data, Path(html_dir) if html_dir else out / "report")
    body = pr_body(data, images={"seconds": str(html.parent / "seconds_per_stage.png")},
                   links={"HTML report": str(html)})
    if body_file:
        Path(body_file).write_text(body)
        echo(f"PR body: {body_file}")
    else:
        echo(body)
    echo(f"HTML report: {html}")
    return 0 if manifest.status == "deployed" else 1


def nightly_command(root: Path | None = None, *, out_file: Path | None = None, post: str = "none",
                    baseline_ref: str = "main", tolerances: list[str] | dict | None = None,
                    run_id: str | None = None, history: Path | None = None,
                    echo: Callable[[str], None] = print, recheck=None, forge=None,
                    deployments: list[str] | None = None, results: Path | None = None) -> int:
    """Re-compile and re-validate every deployment with tonight's toolchain, compare with `baseline_ref`,
    record the history, render the regression report (stdout, `out_file`, `$GITHUB_STEP_SUMMARY`) and,
    with `post="issue"`, keep one GitHub issue up to date. Exit code 1 when anything regressed.

    A shard (`deployments`: its share, `results`: the file for `aipc nightly-merge`) re-checks only its
    share and leaves the history and the issue to the merge (`bot.nightly.merge`).
    The flow lives in `bot.nightly`; `recheck` and `forge` are replaceable for tests."""

    if post not in ("none", "issue"):
        raise BadInput(f"--post {post!r}: expected issue or none", where="--post")
    if results is not None and post != "none":
        raise BadInput("a shard (--results) does not post: `aipc nightly-merge` posts the merged night",
                       where="--post")
    root = Path(root) if root else (repo_root(Path.cwd()) or Path.cwd())
    result = run_nightly(root, ref=baseline_ref, tolerances=Tolerances().with_overrides(tolerances),
                         run_id=run_id, history_path=history, recheck=recheck, only=deployments,
                         record=results is None)
    if results is not None:
        echo(f"shard results: {write(result, results)}")
    return publish_night(root, result, out_file=out_file, post=post, echo=echo, forge=forge,
                         recorded=results is None)


def execute(cmd: Command, model: Path, *, out_dir: Path | None = None, push: bool = False, pr: bool = False,
            events=None, say: Callable[[str], None] = lambda m: None, for_pr: int | None = None):
    from bot.deploy import deploy  # deferred: the stages and backends; aipc report and nightly deploy nothing

    if cmd.verb == "approve" and for_pr is None:
        raise BadInput("`/aipc approve` is for a contributor's pull request", hint="use `/aipc retry` on a bot PR")
    exclude = [cmd.repair] if cmd.verb == "revert" else []
    say(f"{cmd.text()}: re-deploying {model}")
    return deploy(model, out_dir=out_dir, push=push, pr=pr, events=events, say=say, exclude=exclude,
                  rerun_from=cmd.stage, for_pr=for_pr)
