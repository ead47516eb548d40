"""`aipc`: the command line. Exit codes: 0 deployed and valid, 1 a check failed, 2 bad input."""

from __future__ import annotations

import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from bot.errors import BadInput

# Every command below imports what it runs inside its own function, for one reason: that is the
# boundary the GitHub-hosted jobs rely on (`aipc command --plan/--fork-gate` and `aipc changed` load
# no stage and no torch: pyproject's [tool.importlinter], tests/test_architecture.py), and each
# other command pays only for its own imports.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Deploy PyTorch models to Qualcomm AI Runtime (QNN/SNPE) in verifiable stages.")
console = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def _version(value: bool) -> None:
    if value:
        from bot import __version__

        typer.echo(f"aipc {__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="print the bot's version (the tag its workflows pin) and exit")):
    """Deploy PyTorch models to Qualcomm AI Runtime (QNN/SNPE) in verifiable stages."""


class ConsoleEvents:
    """Renders pipeline progress: one line per stage as it ends, a note for long inner work."""

    def __init__(self):
        self.t0 = {}

    def stage_start(self, name: str, index: int, total: int) -> None:
        self.index, self.total = index, total
        self.t0[name] = time.perf_counter()
        if console.is_terminal:
            console.print(f"[dim][{index + 1}/{total}][/dim] {name} …", end="\r")

    def stage_end(self, r) -> None:
        mark = "[green]✓[/green]" if r.passed else "[red]✗[/red]"
        extra = " [dim](cached)[/dim]" if r.cached else ""
        msg = "" if r.passed else f" — {r.failure.message if r.failure else 'check failed'}"
        console.print(f"[dim][{self.index + 1}/{self.total}][/dim] {r.stage:<9} {mark} {r.seconds:6.2f}s{extra}{msg}")

    def note(self, message: str) -> None:
        console.print(f"      [dim]{message}[/dim]")


def summary_table(outcome) -> Table:
    from bot.manifest import Manifest, StageRow  # the command's own work, as above
    from bot.report.view import stage_figure  # the same figure per stage as the PR body

    m = Manifest.parse(outcome.manifest)
    t = Table(title=f"{m.model} → {m.status}", title_justify="left")
    for col in ("stage", "status", "seconds", "key figures"):
        t.add_column(col)
    for r in outcome.results:
        status = "cached" if r.cached else ("pass" if r.passed else "FAIL")
        t.add_row(r.stage, status, f"{r.seconds:.2f}", stage_figure(StageRow.model_validate(r.to_dict())))
    return t


def _run(fn, debug: bool) -> None:
    """Call `fn`, mapping bad input to exit 2 with one paragraph and no traceback (unless --debug)."""
    if not debug:
        warnings.filterwarnings("ignore")
        os.environ.setdefault("PYTHONWARNINGS", "ignore")
    try:
        code = fn()
    except BadInput as e:
        if debug:
            traceback.print_exc()
        console.print(f"[red]error:[/red] {e.paragraph()}", soft_wrap=True)
        raise typer.Exit(2)
    raise typer.Exit(code or 0)


@app.command()
def deploy(
    model: Path = typer.Argument(..., help="the model's folder (with aipc.yaml) or the aipc.yaml itself"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="deployment folder [default: <repo>/deployments/<name>]"),
    engine: Optional[str] = typer.Option(None, help="backend: ort-qnn (default), qairt-sdk, adb"),
    repair: bool = typer.Option(True, help="run the repair loop when a stage fails"),
    push: bool = typer.Option(False, help="push the bot branch to the remote"),
    pr: bool = typer.Option(False, help="open or update the pull request on GitHub"),
    rerun_from: Optional[str] = typer.Option(None, "--rerun-from", help="run this stage and the later ones again "
                                                                          "(the earlier ones are reused)"),
    revert: list[str] = typer.Option([], "--revert", help="deploy without this repair and remember it (repeatable)"),
    for_pr: Optional[int] = typer.Option(None, "--for-pr", help="contributor mode: deploy for this pull request "
                                                                "(bot branch on its head, one report comment)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan (`aipc plan`) and deploy nothing"),
    debug: bool = typer.Option(False, help="show tracebacks"),
):
    """Take a model through every stage to a validated QNN context binary."""
    from bot.deploy import deploy as run_deploy

    if dry_run:
        return plan(model, out_dir=out_dir, engine=engine, as_json=False, debug=debug)

    def go():
        outcome = run_deploy(model, out_dir=out_dir, engine=engine, repair=repair, push=push, pr=pr,
                             events=ConsoleEvents(), say=lambda m: console.print(m), exclude=revert or None,
                             rerun_from=rerun_from or None, for_pr=for_pr)
        out.print(summary_table(outcome))
        out.print(f"artifacts: {outcome.out_dir}")
        return 0 if outcome.passed else 1

    _run(go, debug)


@app.command()
def plan(model: Path = typer.Argument(..., help="the model's folder (with aipc.yaml) or the aipc.yaml itself"),
         out_dir: Optional[Path] = typer.Option(None, "--out", help="deployment folder [default: <repo>/deployments/<name>]"),
         engine: Optional[str] = typer.Option(None, help="backend: ort-qnn (default), qairt-sdk, adb"),
         as_json: bool = typer.Option(False, "--json", help="print the plan as JSON"),
         debug: bool = typer.Option(False)):
    """Say what `aipc deploy` would do, running nothing: the definition with every default, the stages
    (cached or would run, and why), the repairs the last run kept and the ones reverted."""
    from bot.plan import plan as make_plan

    def go():
        p = make_plan(model, out_dir=out_dir, engine=engine)
        if as_json:
            typer.echo(p.to_json())
        else:
            for line in p.lines():
                out.print(line, soft_wrap=True, markup=False, highlight=False)
        return 0

    _run(go, debug)


@app.command()
def validate(
    model: Path = typer.Argument(..., help="the model's folder (with aipc.yaml)"),
    out_dir: Optional[Path] = typer.Option(None, "--out"),
    debug: bool = typer.Option(False),
):
    """Re-check existing artifacts: hashes against the manifest, then the validate stage on the backend."""
    from bot.deploy import revalidate

    def go():
        report = revalidate(model, out_dir=out_dir, events=ConsoleEvents(), say=lambda m: console.print(m))
        for line in report.lines:
            out.print(line)
        return 0 if report.passed else 1

    _run(go, debug)


@app.command()
def report(model: Path = typer.Argument(..., help="the model's folder (with aipc.yaml)"),
           out_dir: Optional[Path] = typer.Option(None, "--out"),
           html_dir: Optional[Path] = typer.Option(None, "--html"),
           body: Optional[Path] = typer.Option(None, "--body", help="write the PR body here instead of stdout"),
           debug: bool = typer.Option(False)):
    """Render the PR body and the HTML report of an existing deployment."""
    from bot.cli_actions import report_command

    _run(lambda: report_command(model, out_dir=out_dir, html_dir=html_dir, body_file=body, echo=typer.echo), debug)


@app.command()
def nightly(root: Optional[Path] = typer.Option(None, help="repository root [default: this checkout]"),
            summary: Optional[Path] = typer.Option(None, "--summary", help="also write the report here"),
            post: str = typer.Option("none", "--post", help="issue: open/update one GitHub issue with the "
                                                            "regressions (closed when all clear); none: files only"),
            baseline_ref: str = typer.Option("main", "--baseline-ref", help="the branch whose committed "
                                                                            "manifests are the accepted figures"),
            tolerance: list[str] = typer.Option([], "--tolerance", help="override a rule's tolerance, e.g. "
                                                                        "latency_rel=0.2 (repeatable; docs/nightly.md)"),
            run_id: Optional[str] = typer.Option(None, "--run-id", help="history key [default: $GITHUB_RUN_ID, "
                                                                        "else today's UTC date]"),
            history: Optional[Path] = typer.Option(None, "--history", help="history file [default: "
                                                                           "deployments/nightly-history.jsonl]"),
            deployments: Optional[str] = typer.Option(None, "--deployments", help="a shard's share: folder names "
                                                      "under deployments/, space- or comma-separated "
                                                      "(`aipc nightly-plan`) [default: all]"),
            results: Optional[Path] = typer.Option(None, "--results", help="a shard: write its results here for "
                                                   "`aipc nightly-merge` (history and issue are left to the merge)"),
            debug: bool = typer.Option(False)):
    """Re-compile and re-validate every deployment with the toolchain installed now; report regressions
    against the figures accepted on main (exit 1 when any)."""
    from bot.cli_actions import nightly_command

    share = [d for d in (deployments or "").replace(",", " ").split() if d] if deployments is not None else None
    _run(lambda: nightly_command(root, out_file=summary, post=post, baseline_ref=baseline_ref, tolerances=tolerance,
                                 run_id=run_id, history=history, echo=typer.echo, deployments=share,
                                 results=results), debug)


@app.command("nightly-plan")
def nightly_plan(root: Path = typer.Option(Path("."), help="the checkout"),
                 shards: int = typer.Option(4, "--shards", help="split the deployments into at most this many "
                                                                "shards (one more per extra set of runner labels)"),
                 max_parallel: Optional[int] = typer.Option(None, "--max-parallel", help="shards running at once "
                                                            "[default: all of them]"),
                 output: Optional[Path] = typer.Option(None, "--output", help="append matrix=, max_parallel=, "
                                                                              "count= here ($GITHUB_OUTPUT)"),
                 debug: bool = typer.Option(False)):
    """Split the deployments into shards for the nightly's matrix: runner labels per target, longest first
    onto the least-loaded shard (docs/nightly.md)."""
    from bot.nightly.shards import plan_command

    _run(lambda: plan_command(root, shards=shards, max_parallel=max_parallel, output=output, echo=typer.echo), debug)


@app.command("nightly-merge")
def nightly_merge(results: list[Path] = typer.Argument(..., help="the shards' --results files (or folders of them)"),
                  root: Optional[Path] = typer.Option(None, help="repository root [default: this checkout]"),
                  summary: Optional[Path] = typer.Option(None, "--summary", help="also write the report here"),
                  post: str = typer.Option("none", "--post", help="issue: open/update the one regressions issue"),
                  history: Optional[Path] = typer.Option(None, "--history", help="history file [default: "
                                                                                 "deployments/nightly-history.jsonl]"),
                  expected: Optional[str] = typer.Option(None, "--expected", help="every planned deployment "
                                                         "(space- or comma-separated): one without results "
                                                         "is reported as a failure"),
                  debug: bool = typer.Option(False)):
    """Merge the shards of one night: one history write, one report, one regressions issue (exit 1 when any
    shard regressed)."""
    from bot.nightly.merge import merge_command

    planned = [d for d in (expected or "").replace(",", " ").split() if d] if expected is not None else None
    _run(lambda: merge_command(results, root=root, history=history, out_file=summary, post=post,
                               expected=planned, echo=typer.echo), debug)


@app.command("command")
def pr_command(text: Optional[str] = typer.Option(None, help="the PR comment, e.g. '/aipc revert int16-localized'"),
            model: Optional[Path] = typer.Option(None, help="the model's folder [default: from the PR's branch]"),
            pr: Optional[int] = typer.Option(None, help="the pull request the comment is on (GitHub)"),
            actor: Optional[str] = typer.Option(None, help="who commented: refused unless their role is "
                                                          "admin, maintain or write (checked with the API)"),
            plan: bool = typer.Option(False, "--plan", help="check and decide only (GitHub-hosted step): "
                                                            "write what to deploy to --output, deploy nothing"),
            fork_gate: bool = typer.Option(False, "--fork-gate", help="post or update the comment asking a "
                                                                      "maintainer to approve a fork's PR"),
            output: Optional[Path] = typer.Option(None, "--output", help="append key=value lines here "
                                                                         "($GITHUB_OUTPUT)"),
            summary: Optional[Path] = typer.Option(None, "--summary", help="append a Markdown note here "
                                                                           "($GITHUB_STEP_SUMMARY)"),
            debug: bool = typer.Option(False)):
    """Act on a PR comment command: `/aipc retry`, `/aipc rerun <stage>`, `/aipc revert <repair>`, `/aipc approve`."""
    from bot.cli_actions import execute
    from bot.pr_commands import model_of_branch, parse, parse_bot_branch

    def note(lines: list[str]) -> None:
        for line in lines:
            console.print(line)
        if summary:
            with open(summary, "a") as f:
                f.write("".join(f"- {line}\n" for line in lines))

    def go():
        if fork_gate or plan:
            from bot.fork_gate import plan_command, post_gate
            from bot.forge.git import Repo
            from bot.forge.github import GitHubForge

            if pr is None:
                raise BadInput("--plan and --fork-gate need --pr")
            forge = GitHubForge(Repo(Path.cwd()))
            if fork_gate:
                note([post_gate(forge, pr)])
                return 0
            if text is None or actor is None:
                raise BadInput("--plan needs --text and --actor")
            decided = plan_command(forge, actor=actor, text=text, number=pr)
            if output:
                with open(output, "a") as f:
                    f.write("".join(f"{k}={v}\n" for k, v in decided.outputs().items()))
            note(decided.notes + [f"deploy {', '.join(decided.models)} at {decided.sha[:12] or 'the default branch'}"])
            return 0
        if text is None:
            raise BadInput("give --text (the comment)")
        if actor is not None:
            from bot.fork_gate import check_permission
            from bot.forge.git import Repo
            from bot.forge.github import GitHubForge

            check_permission(GitHubForge(Repo(Path.cwd())), actor)
        cmd = parse(text)
        folder, for_pr = model, None
        if folder is None:
            if pr is None:
                raise BadInput("give --model, or --pr to read the model from the PR's branch")
            from bot.forge.github import pr_head_branch

            branch = pr_head_branch(pr)
            folder = model_of_branch(branch, Path.cwd())
            for_pr = parse_bot_branch(branch)[1]
        outcome = execute(cmd, folder, push=pr is not None, pr=pr is not None, events=ConsoleEvents(),
                          say=lambda m: console.print(m), for_pr=for_pr)
        out.print(summary_table(outcome))
        return 0 if outcome.passed else 1

    _run(go, debug)


@app.command()
def changed(base: Optional[str] = typer.Option(None, help="the commit before (push: `before`; PR: the base sha)"),
            head: str = typer.Option("HEAD", help="the commit after (push: the pushed sha; PR: the head sha)"),
            model: Optional[str] = typer.Option(None, help="just this model (workflow_dispatch); must exist"),
            root: Path = typer.Option(Path("."), help="the checkout"),
            debug: bool = typer.Option(False)):
    """Print the JSON list of models changed between two commits: the deploy workflow's matrix."""
    import json

    from bot.changes import changed_models, one_model

    def go():
        names = one_model(root, model) if model else changed_models(root, base, head)
        typer.echo(json.dumps(names))
        return 0

    _run(go, debug)


@app.command()
def doctor(as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
           labels: bool = typer.Option(False, "--labels", help="print only the runner labels, comma-separated")):
    """Say what this machine can do: backends and why not, SDK, devices, HTP arch, runner labels.

    Exit 0 when at least one backend can deploy here. Credentials are reported present or absent,
    never their values.
    """
    from bot.doctor import examine, render, summary

    report = examine()
    if as_json:
        typer.echo(report.to_json())
    elif labels:
        typer.echo(",".join(report.labels))
    else:
        out.print(render(report))
        for line in summary(report):
            out.print(line, soft_wrap=True, markup=False)
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def init(folder: Path = typer.Argument(Path("."), help="the model's folder (a .py that builds the module, or an .onnx)"),
         input: list[str] = typer.Option([], "--input", help="an input's shape (and dtype), e.g. "
                                                            "image=1x3x224x224 or tokens=1x16:int32 (repeatable)"),
         model_ref: Optional[str] = typer.Option(None, "--model", help="which model when the folder has several: "
                                                                      "file.py:function, file.py:Class or file.onnx"),
         workflows: bool = typer.Option(False, "--workflows", help="write the repository's GitHub workflows "
                                                                   "(deploy, nightly, PR commands) instead"),
         bot_repository: Optional[str] = typer.Option(None, "--bot-repository", help="OWNER/NAME of the bot's "
                                                      "repository the workflows and schema header point to"),
         tag: Optional[str] = typer.Option(None, "--tag", help="the bot's version the workflows pin "
                                                              "[default: v<this version>]"),
         force: bool = typer.Option(False, help="overwrite existing files"),
         debug: bool = typer.Option(False)):
    """Adopt the bot: write a commented aipc.yaml for the model in FOLDER and prove it loads, or with
    --workflows the caller's workflows pinned to a tag of the bot."""
    from bot.adopt import pinned

    repo, ref = pinned(bot_repository, tag)

    def go():
        if workflows:
            from bot.adopt.workflows import write_workflows

            for path in write_workflows(folder, bot_repository=repo, tag=ref, force=force):
                out.print(f"wrote {path}")
            out.print(f"pinned to {repo}@{ref}; upgrade on purpose by changing that tag (CHANGELOG.md)",
                      soft_wrap=True)
            return 0
        from bot.adopt.init import init_model

        result = init_model(folder, input, choose=model_ref, force=force, bot_repository=repo, tag=ref)
        out.print(f"wrote {result.path}", soft_wrap=True)
        for note in result.found.notes:
            out.print(f"  read: {note}", soft_wrap=True, markup=False)
        shapes = ", ".join(f"{n} {s}" for n, s in result.outputs.items())
        out.print(f"  load stage: passed; the model returns {shapes}", soft_wrap=True, markup=False)
        for what in result.found.unknown:
            out.print(f"  not inferred: {what}", soft_wrap=True, markup=False)
        for other in result.found.others:
            out.print(f"  also found (not used; --model picks one): {other}", soft_wrap=True, markup=False)
        out.print(f"next: aipc plan {folder}  ·  aipc deploy {folder}", soft_wrap=True, markup=False)
        return 0

    _run(go, debug)


@app.command()
def schema():
    """Print the JSON Schema of aipc.yaml (committed as schema/aipc.schema.json; editors read it from
    the definition's `# yaml-language-server: $schema=…` header)."""
    from bot.spec.json_schema import render

    typer.echo(render(), nl=False)


def main() -> None:
    from bot.pipeline.limits import enable_hard_stop

    # this process is the CLI's own: a stage stuck in native code past limits.stage_seconds may end it,
    # with a message (in-process callers, such as tests, keep a process the watchdog never ends)
    enable_hard_stop()
    app()


if __name__ == "__main__":
    sys.exit(main())
