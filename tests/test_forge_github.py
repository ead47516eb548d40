"""The GitHub forge through the real PyGithub client against a fake REST server on loopback.

The fake's branches are the bare `origin` the test pushes to, so "branch on GitHub" is real git.
"""

from __future__ import annotations

import time

import pytest

from bot.errors import BadInput
from bot.forge import publish
from bot.report import write_files
from fake_github import FAST, make_deployment, make_repo, repair, serving, sh



@pytest.fixture
def world(tmp_path, monkeypatch):
    work, bare = make_repo(tmp_path)
    with serving(bare, monkeypatch) as fake:
        yield work, bare, tmp_path / "out" / "tiny", fake


def run(work, out, manifest, **opts):
    said = []
    write_files(out, manifest)  # what a deploy writes before it publishes
    res = publish(deployment_dir=out, model_dir=work / "models" / "tiny", manifest=manifest, push=True, pr=True,
                  say=said.append, forge_options={**FAST, **opts})
    return res, said


def test_first_run_pushes_the_branch_and_opens_one_pr(world):
    work, bare, out, fake = world
    res, said = run(work, out, make_deployment(out, repairs=[repair(1)]))
    assert sh(bare, "rev-parse", "refs/heads/aipc/tiny") == res.sha
    assert list(fake.pulls) == [1]
    pr = fake.pulls[1]
    assert (pr["head"], pr["base"], pr["state"]) == ("aipc/tiny", "main", "open")
    assert pr["title"] == "aipc: tiny → QNN HTP SM8650 w8a8 (deployed)"
    assert "| validate | ✅ passed | 0.70 |" in pr["body"] and "<!-- aipc:body-sha256=" in pr["body"]
    raw = f"{fake.url}/acme/zoo/raw/{res.sha}/deployments/tiny/report/seconds_per_stage.png"
    assert f"![seconds per stage]({raw})" in pr["body"]
    assert sorted(pr["labels"]) == ["aipc", "aipc:repaired"]
    contexts = {s["context"]: s["state"] for s in fake.statuses[res.sha]}
    assert contexts == {f"aipc/{s}": "success" for s in
                        ("load", "export", "optimize", "compat", "quantize", "compile", "validate", "package")}
    assert res.pr.created and res.pr.number == 1 and any("pull request opened" in s for s in said)


def test_second_run_on_a_new_commit_updates_the_same_pr(world):
    work, bare, out, fake = world
    first, _ = run(work, out, make_deployment(out, repairs=[repair(1)]))
    (work / "README.md").write_text("model zoo v2\n")
    sh(work, "commit", "-qam", "docs: v2")
    new_head = sh(work, "rev-parse", "HEAD")
    fake.requests.clear()
    second, _ = run(work, out, make_deployment(out, status="failed", repairs=[repair(1)]))
    assert list(fake.pulls) == [1] and not fake.calls("POST", "/pulls")
    assert fake.calls("PATCH", "/pulls/1") == [("PATCH", "/repos/acme/zoo/pulls/1")]
    tip = sh(bare, "rev-parse", "refs/heads/aipc/tiny")
    assert tip == second.sha != first.sha and sh(bare, "merge-base", "--is-ancestor", new_head, tip) == ""
    pr = fake.pulls[1]
    assert "(failed)" in pr["title"] and "### Failure: `export` (export_error)" in pr["body"]
    assert sorted(pr["labels"]) == ["aipc", "aipc:needs-human", "aipc:repaired"]
    assert {s["context"]: s["state"] for s in fake.statuses[tip]} == {"aipc/load": "success", "aipc/export": "failure"}
    # back to green: the needs-human label goes, the others stay
    run(work, out, make_deployment(out, repairs=[repair(1)]))
    assert sorted(fake.pulls[1]["labels"]) == ["aipc", "aipc:repaired"]


def test_an_unchanged_run_edits_nothing(world):
    work, bare, out, fake = world
    m = make_deployment(out)
    first, _ = run(work, out, m)
    fake.requests.clear()
    second, said = run(work, out, m)
    assert second.sha == first.sha and not second.pushed
    assert not second.pr.edited and not second.pr.created and second.pr.statuses_posted == 0
    methods = {m for m, _ in fake.calls()}
    assert methods == {"GET"}, fake.calls()
    assert any("pull request unchanged" in s for s in said)


def test_a_human_commit_on_the_bot_branch_stops_the_bot(world):
    work, bare, out, fake = world
    run(work, out, make_deployment(out))
    clone = work.parent / "human"
    sh(work.parent, "clone", "-q", "-b", "aipc/tiny", str(bare), str(clone))
    (clone / "tweak.txt").write_text("reviewer's fix\n")
    sh(clone, "add", "tweak.txt")
    sh(clone, "commit", "-qm", "tweak threshold")
    sh(clone, "push", "-q", "origin", "aipc/tiny")
    human = sh(clone, "rev-parse", "HEAD")
    fake.requests.clear()
    res, said = run(work, out, make_deployment(out, cosine=0.97))
    assert res.stopped_by == human and sh(bare, "rev-parse", "refs/heads/aipc/tiny") == human
    assert not fake.calls("PATCH") and not fake.calls("POST", "/statuses")
    assert len(fake.comments[1]) == 1 and human in fake.comments[1][0]["body"]
    assert "stopped updating `aipc/tiny`" in fake.comments[1][0]["body"]
    run(work, out, make_deployment(out, cosine=0.96))
    assert len(fake.comments[1]) == 1  # said once, not on every run


def test_server_errors_are_retried(world):
    work, bare, out, fake = world
    fake.fail("GET", r"^/repos/acme/zoo$", 502, times=2)
    fake.fail("POST", r"/pulls$", 500, times=1)
    res, _ = run(work, out, make_deployment(out))
    assert res.pr.created and list(fake.pulls) == [1]
    assert len(fake.calls("GET", "/repos/acme/zoo")) >= 3
    assert len([c for c in fake.calls("POST") if c[1].endswith("/pulls")]) == 2


def test_rate_limits_are_retried_quickly(world):
    work, bare, out, fake = world
    past = str(int(time.time()) - 10)
    fake.fail("GET", r"^/repos/acme/zoo$", 403, times=1,
              headers={"x-ratelimit-remaining": "0", "x-ratelimit-limit": "5000", "x-ratelimit-reset": past},
              body={"message": "API rate limit exceeded for user ID 1."})
    fake.fail("GET", r"/pulls$", 429, times=1, headers={"retry-after": "0"}, body={"message": "Too Many Requests"})
    t0 = time.time()
    res, _ = run(work, out, make_deployment(out))
    assert res.pr.created and time.time() - t0 < 15
    assert [c for c in fake.requests if c[0] == "GET" and c[1] == "/repos/acme/zoo"].__len__() == 2


def test_retries_are_bounded_and_the_local_commit_survives(world):
    work, bare, out, fake = world
    fake.fail("GET", r"^/repos/acme/zoo$", 503, times=100)
    t0 = time.time()
    with pytest.raises(BadInput, match="kept failing"):
        run(work, out, make_deployment(out))
    assert time.time() - t0 < 15
    assert len(fake.calls("GET", "/repos/acme/zoo")) == 1 + FAST["retries"]
    assert "aipc(tiny): manifest and report" in sh(work, "log", "-1", "--format=%s", "aipc/tiny")
    assert sh(bare, "branch", "--list", "aipc/tiny") == ""  # nothing pushed before GitHub answered


def test_missing_token_is_a_clear_error_and_keeps_the_local_commit(world, monkeypatch):
    work, bare, out, fake = world
    monkeypatch.delenv("GITHUB_TOKEN")
    with pytest.raises(BadInput, match="GITHUB_TOKEN is not set"):
        run(work, out, make_deployment(out))
    assert sh(work, "rev-parse", "--verify", "aipc/tiny")
    assert sh(bare, "branch", "--list", "aipc/tiny") == "" and fake.requests == []


def test_wrong_token_is_a_clear_error_and_keeps_the_local_commit(world, monkeypatch):
    work, bare, out, fake = world
    monkeypatch.setenv("GITHUB_TOKEN", "stale-token")
    with pytest.raises(BadInput, match="rejected the token") as e:
        run(work, out, make_deployment(out))
    assert "401" in str(e.value)
    tip = sh(work, "rev-parse", "aipc/tiny")
    assert sh(bare, "branch", "--list", "aipc/tiny") == ""
    monkeypatch.setenv("GITHUB_TOKEN", fake.token)  # fixed token: the same commit goes out, nothing redone
    res, _ = run(work, out, make_deployment(out))
    assert res.sha == tip and res.commits == [] and res.pushed and res.pr.created
