"""The git work and the local forge, on real repositories made in a temporary folder."""

from __future__ import annotations

import json
import subprocess

import pytest

from bot.forge import publish
from bot.report import write_files
from fake_github import make_deployment, make_repo, repair, sh


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.delenv("AIPC_FORGE", raising=False)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    work, bare = make_repo(tmp_path)
    return work, bare, tmp_path / "out" / "tiny"


def run(work, out, manifest, **kw):
    said = []
    write_files(out, manifest)  # what a deploy writes before it publishes
    res = publish(deployment_dir=out, model_dir=work / "models" / "tiny", manifest=manifest, push=kw.pop("push", False),
                  pr=False, say=said.append, **kw)
    return res, said


def user_state(work):
    """Everything of the user's checkout the bot must leave alone."""
    index = (work / ".git" / "index").read_bytes()
    return sh(work, "rev-parse", "HEAD"), sh(work, "symbolic-ref", "HEAD"), sh(work, "status", "--porcelain"), index


def test_first_run_commits_each_stage_without_touching_the_checkout(world):
    work, _, out = world
    (work / "README.md").write_text("model zoo, edited but not committed\n")
    (work / "notes.txt").write_text("staged by the user\n")
    sh(work, "add", "notes.txt")
    before = user_state(work)
    m = make_deployment(out)
    res, said = run(work, out, m)

    assert user_state(work) == before
    head = before[0]
    subjects = sh(work, "log", "--format=%s", f"{head}..aipc/tiny").splitlines()[::-1]
    assert subjects[:8] == [f"aipc(tiny): {s} passed in {0.1 * (i + 1):.2f}s" for i, s in
                            enumerate(["load", "export", "optimize", "compat", "quantize", "compile", "validate", "package"])]
    assert subjects[-1] == "aipc(tiny): manifest and report, deployed"
    assert sh(work, "merge-base", "--is-ancestor", head, "aipc/tiny") == ""
    files = sh(work, "ls-tree", "-r", "--name-only", "aipc/tiny").splitlines()
    assert "README.md" in files and "models/tiny/aipc.yaml" in files
    assert "deployments/tiny/validate/result.json" in files and "deployments/tiny/manifest.json" in files
    assert "deployments/tiny/.gitignore" in files and "deployments/tiny/report/index.html" in files
    assert "deployments/tiny/report/seconds_per_stage.png" in files
    assert not [f for f in files if "/.work/" in f]
    assert "notes.txt" not in files  # the user's staged file is theirs, not the bot's
    body = sh(work, "log", "-1", "--format=%B", "aipc/tiny~2")  # the validate commit
    assert "out cosine = 0.9991 (threshold 0.95)" in body and "Why this stage:" in body
    assert "Aipc-Model: tiny" in body and f"Aipc-Base: {head}" in body
    assert sh(work, "log", "-1", "--format=%ce", "aipc/tiny") == "aipc-bot@users.noreply.github.com"
    pr = work / ".git" / "aipc" / "prs" / "tiny.md"
    text = pr.read_text()
    assert text.startswith("# aipc: tiny → QNN HTP SM8650 w8a8 (deployed)")
    assert "- labels: `aipc`\n" in text and "status `aipc/validate`: success" in text
    assert res.pr.created and any("9 new commit" in s for s in said)


def test_unchanged_rerun_makes_no_commit_and_leaves_the_pr_file(world):
    work, _, out = world
    m = make_deployment(out)
    first, _ = run(work, out, m)
    pr = work / ".git" / "aipc" / "prs" / "tiny.md"
    text = pr.read_text()
    m2 = dict(m, started="2031-01-01T00:00:00Z", seconds_total=0.0,
              stages=[dict(s, cached=True) for s in m["stages"]])
    (out / "manifest.json").write_text(json.dumps(m2))
    second, said = run(work, out, m2)
    assert second.sha == first.sha and second.commits == []
    assert not second.pr.created and not second.pr.edited and pr.read_text() == text
    assert any("nothing changed" in s for s in said)


def test_changed_result_adds_only_the_changed_stage(world):
    work, _, out = world
    first, _ = run(work, out, make_deployment(out, cosine=0.9991))
    second, _ = run(work, out, make_deployment(out, cosine=0.9700))
    assert second.commits[0] == "aipc(tiny): validate passed in 0.70s"
    assert [c.split(":")[1].split()[0] for c in second.commits] == ["validate", "manifest"]
    assert sh(work, "rev-parse", "aipc/tiny~2") == first.sha


def test_repairs_become_patch_files_and_commits_that_say_why(world):
    work, _, out = world
    m = make_deployment(out, repairs=[repair(1), repair(2, kept=False, diff="--- a\n+++ b\n@@\n-a\n+b\n")])
    res, _ = run(work, out, m)
    files = sh(work, "ls-tree", "-r", "--name-only", "aipc/tiny").splitlines()
    assert "deployments/tiny/patches/01-graph-resize-nearest.patch" in files
    assert "deployments/tiny/patches/02-graph-resize-nearest.patch" in files
    patch = sh(work, "show", "aipc/tiny:deployments/tiny/patches/01-graph-resize-nearest.patch")
    assert "+x = up_nearest(x)" in patch
    log = sh(work, "log", "--format=%B", "-n3", "aipc/tiny")
    assert "repair 01 resize-nearest (graph) kept" in log and "repair 02 resize-nearest (graph) tried and reverted" in log
    assert "Why: HTP rejected Resize (bilinear, align_corners)" in log
    assert "- labels: `aipc`, `aipc:repaired`" in (work / ".git/aipc/prs/tiny.md").read_text()


def test_failed_deployment_is_labelled_for_a_human(world):
    work, _, out = world
    res, _ = run(work, out, make_deployment(out, status="failed", log="Traceback …\nUnsupported op\n"))
    text = (work / ".git/aipc/prs/tiny.md").read_text()
    assert "`aipc:needs-human`" in text and "status `aipc/export`: failure" in text
    assert "aipc(tiny): export FAILED" in sh(work, "log", "--format=%s", "aipc/tiny")
    assert "deployments/tiny/validate/result.json" not in sh(work, "ls-tree", "-r", "--name-only", "aipc/tiny")


def test_big_binaries_stay_out_of_git_and_the_manifest_says_where(world):
    work, _, out = world
    m = make_deployment(out, big_bytes=4096)
    res, _ = run(work, out, m, max_git_bytes=1024)
    files = sh(work, "ls-tree", "-r", "--name-only", "aipc/tiny").splitlines()
    if res.storage["lfs"]:  # git-lfs installed: a pointer in git
        assert "deployments/tiny/compile/model_ctx_qnn.bin" in files
        assert res.storage["files"]["compile/model_ctx_qnn.bin"]["where"] == "lfs"
    else:
        assert "deployments/tiny/compile/model_ctx_qnn.bin" not in files
        assert "deployments/tiny/compile/result.json" in files
        on_branch = json.loads(sh(work, "show", "aipc/tiny:deployments/tiny/manifest.json"))
        meta = on_branch["storage"]["files"]["compile/model_ctx_qnn.bin"]
        assert meta["where"] == "artifact" and meta["bytes"] == 4096 and len(meta["sha256"]) == 64
        assert on_branch["storage"]["files"]["validate/result.json"]["where"] == "git"
        assert "compile/model_ctx_qnn.bin" in (work / ".git/aipc/prs/tiny.md").read_text()
        assert "Kept out of git" in sh(work, "log", "-1", "--format=%B", "aipc/tiny~3")  # the compile commit
    assert json.loads((out / "manifest.json").read_text())["storage"] == res.storage


def test_new_head_rebuilds_the_branch_from_it(world):
    work, _, out = world
    m = make_deployment(out)
    first, _ = run(work, out, m)
    (work / "models" / "tiny" / "aipc.yaml").write_text("name: tiny\nentry: model.py:build\n# v2\n")
    sh(work, "commit", "-qam", "tiny: v2")
    new_head = sh(work, "rev-parse", "HEAD")
    second, _ = run(work, out, m)
    assert second.sha != first.sha
    assert sh(work, "merge-base", "--is-ancestor", new_head, "aipc/tiny") == ""
    assert subprocess.run(["git", "-C", str(work), "merge-base", "--is-ancestor", first.sha, "aipc/tiny"]).returncode == 1
    assert sh(work, "rev-list", "--count", f"{new_head}..aipc/tiny") == "9"


def test_a_human_commit_stops_the_bot(world):
    work, _, out = world
    run(work, out, make_deployment(out))
    wt = work.parent / "wt"
    sh(work, "worktree", "add", "-q", str(wt), "aipc/tiny")
    (wt / "fix.txt").write_text("my fix\n")
    sh(wt, "add", "fix.txt")
    sh(wt, "commit", "-qm", "hand fix", "-m", "Aipc-Model: tiny")  # even a copied trailer does not fool it
    sh(work, "worktree", "remove", str(wt))
    human = sh(work, "rev-parse", "aipc/tiny")
    res, said = run(work, out, make_deployment(out, cosine=0.97))
    assert res.stopped_by == human and sh(work, "rev-parse", "aipc/tiny") == human
    assert any("not written by the bot" in s for s in said)
    comments = work / ".git/aipc/prs/tiny.comments.md"
    assert human in comments.read_text()
    run(work, out, make_deployment(out, cosine=0.96))
    assert comments.read_text().count("stopped updating") == 1


def test_outside_a_repository_it_only_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("AIPC_FORGE", raising=False)  # conftest turns the forge off by default
    said = []
    model = tmp_path / "m"
    model.mkdir()
    assert publish(deployment_dir=tmp_path / "o", model_dir=model, manifest={"model": "m"}, push=False, pr=False,
                   say=said.append) is None
    assert "not inside a git repository" in said[0]


def test_refuses_to_move_the_branch_the_user_is_on(world):
    work, _, out = world
    run(work, out, make_deployment(out))
    sh(work, "checkout", "-q", "aipc/tiny")
    tip = sh(work, "rev-parse", "HEAD")
    res, said = run(work, out, make_deployment(out, cosine=0.97))
    assert res is None and "checked out here" in said[0] and sh(work, "rev-parse", "aipc/tiny") == tip


def test_push_sends_the_branch_to_origin(world):
    work, bare, out = world
    res, _ = run(work, out, make_deployment(out), push=True)
    assert res.pushed and sh(bare, "rev-parse", "refs/heads/aipc/tiny") == res.sha
    again, _ = run(work, out, make_deployment(out), push=True)
    assert not again.pushed and again.sha == res.sha


def test_composite_deployment_publishes_parts_runtime_and_report(world):
    """A real composite deployment (models/tiny_lm: one KV-cache step graph + the decode loop) through
    `deploy` → `deploy_parts` → the local forge, twice: the re-run changes nothing."""
    import shutil
    from pathlib import Path

    from bot.deploy import deploy

    work, _, _ = world
    shutil.copytree(Path(__file__).resolve().parents[1] / "models" / "tiny_lm", work / "models" / "tiny_lm",
                    ignore=shutil.ignore_patterns("__pycache__"))
    sh(work, "add", "models/tiny_lm")
    sh(work, "commit", "-qm", "zoo: add tiny_lm")
    before = user_state(work)
    out = work.parent / "out" / "tiny_lm"
    said = []
    first = deploy(work / "models" / "tiny_lm", out_dir=out, say=said.append)
    assert first.passed and user_state(work) == before
    head = before[0]
    subjects = sh(work, "log", "--format=%s", f"{head}..aipc/tiny_lm").splitlines()[::-1]
    assert subjects[0].startswith("aipc(tiny_lm): part step deployed in ") and len(subjects) == 2
    assert subjects[-1] == "aipc(tiny_lm): manifest, end-to-end checks and report, deployed"
    part_msg = sh(work, "log", "-1", "--format=%B", "aipc/tiny_lm~1")
    assert "Static shapes: token 1×1" in part_msg and "- ok: validate in" in part_msg
    assert "logits: cosine" in part_msg and "Aipc-Model: tiny_lm" in part_msg
    top_msg = sh(work, "log", "-1", "--format=%B", "aipc/tiny_lm")
    assert "- ok: token agreement with the PyTorch greedy decode = 1 (threshold 1)" in top_msg
    files = sh(work, "ls-tree", "-r", "--name-only", "aipc/tiny_lm").splitlines()
    for f in ("step/compile/result.json", "step/package/model_ctx_qnn.bin", "step/manifest.json",
              "step/report/index.html", "runtime/decode_loop.py", "runtime/tokens.json", "manifest.json",
              "report/index.html", "report/seconds_per_stage.png", ".gitignore"):
        assert f"deployments/tiny_lm/{f}" in files, f
    assert not [f for f in files if ".work" in f.split("/")]
    assert (out / ".work").is_dir() or (out / "step" / ".work").is_dir()  # there was something to exclude
    on_branch = json.loads(sh(work, "show", "aipc/tiny_lm:deployments/tiny_lm/manifest.json"))
    assert on_branch["kind"] == "multi" and on_branch["storage"]["files"]["step/manifest.json"]["where"] == "git"
    pr = work / ".git" / "aipc" / "prs" / "tiny_lm.md"
    text = pr.read_text()
    assert text.startswith("# aipc: tiny_lm → QNN HTP SM8650 fp16 (deployed)")
    assert "- status `aipc/step`: success" in text and "- status `aipc/e2e/decode`: success" in text
    assert "| Parts | 1 of 1 deployed (step) |" in text and "4/4 sequences identical to PyTorch" in text
    assert "| token agreement with the PyTorch greedy decode | 1 | ≥ 1 | ✅ |" in text

    # the re-run re-measures the decode loop and wall times, nothing else: no commit, no PR edit
    tip = sh(work, "rev-parse", "aipc/tiny_lm")
    said.clear()
    assert deploy(work / "models" / "tiny_lm", out_dir=out, say=said.append).passed
    assert sh(work, "rev-parse", "aipc/tiny_lm") == tip and pr.read_text() == text
    assert any("nothing changed" in s for s in said)

    # a human commit on the branch stops the bot for composites too
    wt = work.parent / "wt"
    sh(work, "worktree", "add", "-q", str(wt), "aipc/tiny_lm")
    (wt / "fix.txt").write_text("my fix\n")
    sh(wt, "add", "fix.txt")
    sh(wt, "commit", "-qm", "hand fix")
    sh(work, "worktree", "remove", str(wt))
    human = sh(work, "rev-parse", "aipc/tiny_lm")
    m = json.loads((out / "manifest.json").read_text())
    res = publish(deployment_dir=out, model_dir=work / "models" / "tiny_lm", manifest=dict(m, status="failed"),
                  push=False, pr=False)
    assert res.stopped_by == human and sh(work, "rev-parse", "aipc/tiny_lm") == human
