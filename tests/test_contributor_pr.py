"""Contributor-PR mode against the fake GitHub over real HTTP, with a real git repository.

The contributor's branch is pushed to the bare `origin`; the bot branch must start from its head,
the bot's PR must target it, and one comment on the contributor's PR must carry the report.
"""

from __future__ import annotations

import pytest

from bot.forge.contributor import publish_for_pr, report_marker
from bot.report import write_files
from fake_github import FAST, make_deployment, make_repo, repair, serving, sh



@pytest.fixture
def world(tmp_path, monkeypatch):
    work, bare = make_repo(tmp_path)
    with serving(bare, monkeypatch) as fake:
        yield work, bare, tmp_path / "out" / "tiny", fake


def contribute(work, branch="tune-tiny") -> str:
    """The contributor's commit on their branch, checked out as the workflow checks out the PR head."""
    sh(work, "checkout", "-q", "-b", branch)
    (work / "models" / "tiny" / "aipc.yaml").write_text("name: tiny\nentry: model.py:build\n# tuned\n")
    sh(work, "commit", "-qam", "tiny: tune")
    return sh(work, "rev-parse", "HEAD")


def run(work, out, manifest, number):
    said = []
    write_files(out, manifest)  # what a deploy writes before it publishes
    res = publish_for_pr(number, deployment_dir=out, model_dir=work / "models" / "tiny", manifest=manifest,
                         say=said.append, forge_options=FAST)
    return res, said


def test_bot_branch_starts_on_the_pr_head_and_its_pr_targets_the_contributor_branch(world):
    work, bare, out, fake = world
    head = contribute(work)
    sh(work, "push", "-q", "origin", "tune-tiny")
    n = fake.open_pull("tune-tiny")

    res, said = run(work, out, make_deployment(out, repairs=[repair(1)]), n)
    tip = sh(bare, "rev-parse", "refs/heads/aipc/tiny-pr1")
    assert tip == res.published.sha
    bot_commits = sh(bare, "rev-list", "--first-parent", f"{head}..{tip}").split()
    assert bot_commits and sh(bare, "rev-parse", f"{bot_commits[-1]}^") == head  # the branch's parent is the PR head
    bot_pr = next(p for p in fake.pulls.values() if p["head"] == "aipc/tiny-pr1")
    assert bot_pr["base"] == "tune-tiny" and bot_pr["number"] != n
    comments = fake.comments[n]
    assert len(comments) == 1 and report_marker("tiny") in comments[0]["body"]
    assert "| validate | ✅ passed | 0.70 |" in comments[0]["body"]  # the report itself
    assert f"/pull/{bot_pr['number']}" in comments[0]["body"] and head[:12] in comments[0]["body"]
    assert res.comment.action == "created" and not fake.comments.get(bot_pr["number"])

    # the same deployment again: nothing to edit, so no write at all
    fake.requests.clear()
    res2, _ = run(work, out, make_deployment(out, repairs=[repair(1)]), n)
    assert res2.comment.action == "unchanged"
    assert [c for c in fake.requests if c[0] in ("POST", "PATCH")] == []

    # a different result: the same comment is edited, still exactly one
    res3, _ = run(work, out, make_deployment(out, status="failed", repairs=[repair(1)]), n)
    assert res3.comment.action == "edited" and res3.comment.id == res.comment.id
    assert len(fake.comments[n]) == 1 and "(failed)" in fake.comments[n][0]["body"]
    assert fake.calls("PATCH", f"/issues/comments/{res.comment.id}")
    assert len([p for p in fake.pulls.values() if p["head"] == "aipc/tiny-pr1"]) == 1


def test_a_new_push_to_the_contributor_branch_rebases_the_bot_branch_on_it(world):
    work, bare, out, fake = world
    contribute(work)
    sh(work, "push", "-q", "origin", "tune-tiny")
    n = fake.open_pull("tune-tiny")
    run(work, out, make_deployment(out), n)
    (work / "README.md").write_text("zoo, tuned\n")
    sh(work, "commit", "-qam", "docs")
    sh(work, "push", "-q", "origin", "tune-tiny")
    new_head = sh(work, "rev-parse", "HEAD")
    res, _ = run(work, out, make_deployment(out), n)
    tip = sh(bare, "rev-parse", "refs/heads/aipc/tiny-pr1")
    assert sh(bare, "merge-base", "--is-ancestor", new_head, tip) == ""
    assert len(fake.comments[n]) == 1 and new_head[:12] in fake.comments[n][0]["body"]


def test_a_fork_pr_gets_the_branch_pushed_and_the_comment_but_no_bot_pr(world):
    work, bare, out, fake = world
    head = contribute(work, "fork-work")
    sh(work, "push", "-q", "origin", f"{head}:refs/pull/1/head")  # GitHub keeps a fork PR's head there
    sh(work, "checkout", "-q", "--detach", head)  # actions/checkout of the approved sha
    n = fake.open_pull("fork-work", fork="someone/zoo", head_sha=head)
    res, _ = run(work, out, make_deployment(out), n)
    tip = sh(bare, "rev-parse", "refs/heads/aipc/tiny-pr1")
    assert sh(bare, "merge-base", "--is-ancestor", head, tip) == ""
    assert list(fake.pulls) == [n]  # a fork's branch cannot be a base here: no bot PR
    body = fake.comments[n][0]["body"]
    assert "git pull" in body and "aipc/tiny-pr1" in body and res.pull.fork


def test_forge_off_publishes_nothing(world, monkeypatch):
    work, bare, out, fake = world
    monkeypatch.setenv("AIPC_FORGE", "off")
    assert publish_for_pr(1, deployment_dir=out, model_dir=work / "models" / "tiny", manifest={}) is None
    assert fake.requests == []
