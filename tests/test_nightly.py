"""`aipc nightly`: real rebuilds of deployed models compared with what main accepted.

The end-to-end tests share one repository (built once per module, copied per test): two tiny models
deployed for real on the default HTP backend and committed to main. `drift` then gets a second commit
on main, as if it had been accepted under an earlier toolchain (onnxruntime-qnn 2.6.0) that gave 6 dB
more SQNR; tonight's rebuild measures what the installed toolchain really gives, so `drift` regresses
and `steady`, whose accepted figures are its own, must stay out of every regression row.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

from bot.nightly import history as H
from bot.nightly.figures import empty, from_manifest
from bot.nightly.rules import Tolerances, compare, toolchain_changes
from bot.cli_actions import nightly_command
from conftest import write_model
from fake_github import serving, sh

# The simulator's timing moves with the machine's load (the full suite runs beside other work);
# the end-to-end tests are about accuracy, so latency gets a bar no noise reaches (a tiny model's
# 8 ms median read 116 ms at load 13: ×5 was not out of reach). The latency rule's own test
# below uses fixed figures.
CALM = {"latency_rel": 1000.0, "latency_abs_ms": 1e6}


def _deploy(root: Path, name: str) -> None:
    from bot.deploy import deploy

    folder = write_model(root / "models" / name, name=name,
                         spec={"validation": {"samples": 2, "outputs": {"y": {"cosine_min": 0.95, "sqnr_min_db": 20}}}})
    outcome = deploy(folder, out_dir=root / "deployments" / name, repair=False)
    assert outcome.passed, outcome.manifest.get("status")


def _accepted_earlier(root: Path, name: str, sqnr_gain: float = 6.0) -> float:
    """Rewrite `name`'s accepted manifest as an earlier toolchain's, with better SQNR; returns it."""
    path = root / "deployments" / name / "manifest.json"
    m = json.loads(path.read_text())
    m["versions"]["onnxruntime-qnn"] = "2.6.0"
    val = next(s for s in m["stages"] if s["stage"] == "validate")
    val["metrics"]["outputs"]["y"]["sqnr_db"] = better = round(val["metrics"]["outputs"]["y"]["sqnr_db"] + sqnr_gain, 6)
    path.write_text(json.dumps(m, indent=2) + "\n")
    return better


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo") / "repo"
    root.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIPC_FORGE", "off")
        for name in ("drift", "steady"):
            _deploy(root, name)
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    (root / ".gitignore").write_text(".work/\n")
    sh(root, "add", "-A")
    sh(root, "commit", "-q", "-m", "deployments accepted by the bot's PRs")
    return root


@pytest.fixture
def repo(zoo, tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(zoo, root, symlinks=True)
    return root


def _nightly(root: Path, run_id: str, **kw) -> tuple[int, str]:
    out = []
    kw.setdefault("tolerances", CALM)
    code = nightly_command(root, echo=out.append, run_id=run_id, **kw)
    return code, out[0]


def test_a_regressed_model_is_reported_with_its_trend_and_an_unchanged_one_makes_no_noise(repo, tmp_path, monkeypatch):
    accepted = _accepted_earlier(repo, "drift")
    sh(repo, "commit", "-q", "-am", "drift accepted under onnxruntime-qnn 2.6.0")
    # the working tree may say anything: the bar is what main committed
    (repo / "deployments" / "drift" / "manifest.json").write_text(
        sh(repo, "show", "HEAD~1:deployments/drift/manifest.json") + "\n")
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    code1, first = _nightly(repo, "night-1", out_file=tmp_path / "n1.md")
    code2, text = _nightly(repo, "night-2")

    assert code1 == code2 == 1
    assert (tmp_path / "n1.md").read_text() == first and first in summary.read_text()
    night2 = [e for e in H.read(repo / "deployments" / H.FILE) if e["run"] == "night-2" and e["model"] == "drift"]
    now = night2[0]["outputs"]["y"]["sqnr_db"]
    row = next(line for line in text.splitlines() if line.startswith("| `drift` | accuracy | y SQNR dB |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[3]) == pytest.approx(accepted, abs=1e-3) and float(cells[4]) == pytest.approx(now, abs=1e-3)
    assert cells[6] == "drop > 1 dB" and float(cells[5]) == pytest.approx(now - accepted, abs=1e-2)
    assert "compared with the figures accepted on `main` (" in text
    assert "- `drift`: onnxruntime-qnn 2.6.0 → 2.7.0" in text
    # the unchanged model: counted, never listed
    assert "`steady`" not in text and "1 model unchanged." in text
    assert "## aipc nightly: 1 regression in 1 of 2 deployments" in text
    # history: one line per model per run, idempotent per run id
    _nightly(repo, "night-2")
    lines = H.read(repo / "deployments" / H.FILE)
    assert sorted((e["run"], e["model"]) for e in lines) == [
        ("night-1", "drift"), ("night-1", "steady"), ("night-2", "drift"), ("night-2", "steady")]
    assert all(e["versions"]["onnxruntime-qnn"] == "2.7.0" for e in lines)
    assert next(e for e in lines if e["model"] == "drift")["regressions"] == ["y SQNR dB"]
    assert next(e for e in lines if e["model"] == "steady")["regressions"] == []
    # the trend: accepted first, then both nights
    trend = next(line for line in text.splitlines() if line.startswith("| `drift` | y SQNR dB | `"))
    assert trend.split("`")[3] == "█▁▁" and trend.count("→") == 2 and "(accepted)" in trend


def test_cli_exit_codes_and_the_all_clear(repo):
    from typer.testing import CliRunner

    from bot.cli import app

    clear = CliRunner().invoke(app, ["nightly", "--root", str(repo), "--run-id", "n1", "--tolerance",
                                     "latency_rel=1000", "--tolerance", "latency_abs_ms=1e6"])
    assert clear.exit_code == 0, clear.output
    assert "no regressions (2 deployments)" in clear.output and "2 models unchanged." in clear.output
    assert "| Model |" not in clear.output
    _accepted_earlier(repo, "drift")
    sh(repo, "commit", "-q", "-am", "drift accepted under onnxruntime-qnn 2.6.0")
    regressed = CliRunner().invoke(app, ["nightly", "--root", str(repo), "--run-id", "n2", "--tolerance",
                                         "latency_rel=1000", "--tolerance", "latency_abs_ms=1e6", "--summary", str(repo / "s.md")])
    assert regressed.exit_code == 1 and "| `drift` | accuracy | y SQNR dB |" in (repo / "s.md").read_text()
    bad = CliRunner().invoke(app, ["nightly", "--root", str(repo), "--tolerance", "speed=1"])
    assert bad.exit_code == 2 and "unknown tolerance 'speed'" in bad.output


def test_a_rebuild_that_fails_is_reported_with_the_toolchains_error(repo):
    q = repo / "deployments" / "drift" / "quantize" / "model.onnx"
    q.write_bytes(q.read_bytes()[: len(q.read_bytes()) // 2])  # the quantized ONNX the rebuild starts from
    code, text = _nightly(repo, "n1")
    assert code == 1
    assert "| `drift` | failure | compile stage | pass | FAIL |" in text
    assert "| `drift` | failure | accepted artifacts (sha256) | pass | FAIL |" in text
    assert "changed quantize/model.onnx" in text and "INVALID_PROTOBUF" in text  # ONNX Runtime's own words
    assert "`steady`" not in text
    assert (repo / "deployments" / "drift" / "compile" / "result.json").exists()  # the accepted one, untouched
    assert json.loads((repo / "deployments" / "drift" / "compile" / "result.json").read_text())["passed"]


def test_without_the_baseline_ref_the_working_tree_is_the_baseline_and_the_report_says_so(repo):
    code, text = _nightly(repo, "n1", baseline_ref="release")
    assert code == 0 and "the working tree (`release` not found in this repository)" in text


def test_post_issue_opens_one_issue_updates_it_in_place_and_closes_it_when_clear(repo, monkeypatch):
    bare = repo.parent / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    with serving(bare, monkeypatch) as fake:
        fake.open_pull("aipc/other", title="a PR carrying the marker must not be mistaken for the issue",
                       body="<!-- aipc:nightly -->")
        real = (repo / "deployments" / "drift" / "manifest.json").read_text()
        _accepted_earlier(repo, "drift")
        sh(repo, "commit", "-q", "-am", "drift accepted under onnxruntime-qnn 2.6.0")

        code, _ = _nightly(repo, "n1", post="issue")
        assert code == 1 and len(fake.issues) == 1
        (number, issue), = fake.issues.items()
        assert issue["title"] == "aipc nightly: regressions" and issue["state"] == "open"
        assert "aipc:nightly" in issue["labels"] and "| `drift` | accuracy | y SQNR dB |" in issue["body"]
        assert issue["body"].rstrip().endswith("<!-- aipc:nightly -->")

        _nightly(repo, "n2", post="issue")
        assert list(fake.issues) == [number] and "Run `n2`" in fake.issues[number]["body"]
        assert len(fake.calls("POST", "/issues")) == 1 and len(fake.calls("PATCH", f"/issues/{number}")) == 1

        (repo / "deployments" / "drift" / "manifest.json").write_text(real)
        sh(repo, "commit", "-q", "-am", "drift re-accepted with tonight's toolchain")
        code, _ = _nightly(repo, "n3", post="issue")
        assert code == 0 and fake.issues[number]["state"] == "closed"
        assert "no regressions (2 deployments)" in fake.issues[number]["body"]
        assert fake.pulls[1]["state"] == "open" and fake.pulls[1]["body"] == "<!-- aipc:nightly -->"


# ---------------------------------------------------------------------- the rule table, on dicts

def _fig(**kw) -> dict:
    f = empty()
    f.update(stages={"compat": True, "compile": True, "validate": True}, integrity=True,
             outputs={"out": {"cosine": 0.999, "sqnr_db": 30.0}, "box.xy": {"cosine": 0.998, "sqnr_db": 25.0}},
             checks={"out cosine": True}, placement={"total": 20, "htp": 20}, latency_ms=10.0)
    f.update(kw)
    return f


def _metrics(rows) -> list[tuple[str, str]]:
    return [(r.kind, r.metric) for r in rows]


def test_identical_figures_and_changes_inside_the_tolerances_are_not_regressions():
    base = _fig()
    assert compare("m", base, _fig()) == []
    inside = _fig(outputs={"out": {"cosine": 0.9981, "sqnr_db": 29.1}, "box.xy": {"cosine": 0.998, "sqnr_db": 25.0}},
                  latency_ms=14.9)
    assert compare("m", base, inside) == []
    better = _fig(outputs={"out": {"cosine": 1.0, "sqnr_db": 40.0}, "box.xy": {"cosine": 1.0, "sqnr_db": 35.0}},
                  latency_ms=1.0, placement={"total": 20, "htp": 20})
    assert compare("m", base, better) == []


def test_each_rule_fires_beyond_its_tolerance():
    base = _fig()
    worse = _fig(outputs={"out": {"cosine": 0.997, "sqnr_db": 28.5}, "box.xy": {"cosine": 0.998, "sqnr_db": 25.0}},
                 placement={"total": 20, "htp": 19}, latency_ms=16.0)
    rows = compare("m", base, worse)
    assert _metrics(rows) == [("accuracy", "out cosine"), ("accuracy", "out SQNR dB"),
                              ("placement", "nodes on the HTP"), ("latency", "latency ms (median)")]
    lat = rows[-1]
    assert (lat.baseline, lat.now, lat.change, lat.rule) == (10.0, 16.0, "+6 (+60%)", "rise > 50% and > 5 ms")
    assert rows[0].change == "-0.002" and rows[2].rule == "any drop"
    # an output whose name has a dot is one output, not a path
    rows = compare("m", base, _fig(outputs={"out": {"cosine": 0.999, "sqnr_db": 30.0},
                                            "box.xy": {"cosine": 0.5, "sqnr_db": 25.0}}))
    assert _metrics(rows) == [("accuracy", "box.xy cosine")]


def test_latency_needs_both_the_relative_and_the_absolute_margin():
    small = _fig(latency_ms=1.0)
    assert compare("m", small, _fig(latency_ms=2.5)) == []  # +150% but 1.5 ms: simulator noise
    assert compare("m", _fig(latency_ms=100.0), _fig(latency_ms=140.0)) == []  # +40 ms but 40%
    assert _metrics(compare("m", _fig(latency_ms=100.0), _fig(latency_ms=151.0))) == [("latency", "latency ms (median)")]
    tight = Tolerances().with_overrides(["latency_rel=0.2", "latency_abs_ms=0.5"])
    assert _metrics(compare("m", small, _fig(latency_ms=2.5), tight)) == [("latency", "latency ms (median)")]


def test_failures_name_the_stage_with_its_error_and_do_not_repeat_as_missing_metrics():
    now = _fig(stages={"compat": True, "compile": False}, failures={"compile": "QNN graph preparation failed"},
               outputs={}, checks={}, latency_ms=None)
    rows = compare("m", _fig(), now)
    assert _metrics(rows) == [("failure", "compile stage")]
    assert (rows[0].baseline, rows[0].now, rows[0].detail) == ("pass", "FAIL", "QNN graph preparation failed")
    # a threshold that passed on main and fails now, and a collapsed output (NaN)
    nan = _fig(outputs={"out": {"cosine": math.nan, "sqnr_db": 30.0}, "box.xy": {"cosine": 0.998, "sqnr_db": 25.0}},
               checks={"out cosine": False})
    assert _metrics(compare("m", _fig(), nan)) == [("accuracy", "out cosine threshold"), ("accuracy", "out cosine")]
    # what failed on main already is no regression
    assert compare("m", _fig(stages={"compile": False}), _fig(stages={"compile": False})) == []


def test_the_accepted_figures_come_from_a_real_manifest_shape():
    manifest = {"versions": {"onnxruntime-qnn": "2.6.0"}, "artifacts": {"a": {"sha256": "x"}}, "stages": [
        {"stage": "load", "passed": True, "metrics": {}},
        {"stage": "compat", "passed": True, "metrics": {"total_nodes": 21, "fallback_nodes": 2}},
        {"stage": "compile", "passed": True, "metrics": {}},
        {"stage": "validate", "passed": True, "metrics": {"outputs": {"y": {"cosine": 0.99, "sqnr_db": 30}},
                                                          "latency_ms_median": 3.5},
         "checks": [{"name": "y cosine", "passed": True, "value": 0.99, "threshold": 0.95},
                    {"name": "output names and shapes match", "passed": True, "value": {}, "threshold": {}}]}]}
    f = from_manifest(manifest)
    assert f["stages"] == {"compat": True, "compile": True, "validate": True} and f["integrity"] is True
    assert f["placement"] == {"total": 21, "htp": 19} and f["latency_ms"] == 3.5
    assert f["checks"] == {"y cosine": True} and f["outputs"]["y"]["sqnr_db"] == 30
    assert toolchain_changes(f["versions"], {"onnxruntime-qnn": "2.7.0", "onnxruntime": "1.32.0"}) == [
        {"name": "onnxruntime", "baseline": "—", "now": "1.32.0"},
        {"name": "onnxruntime-qnn", "baseline": "2.6.0", "now": "2.7.0"}]


def test_tolerance_overrides_are_checked():
    from bot.errors import BadInput

    assert Tolerances().with_overrides({"cosine": "0.01"}).cosine == 0.01
    for bad in (["speed=1"], ["cosine=much"], ["sqnr_db=-1"]):
        with pytest.raises(BadInput):
            Tolerances().with_overrides(bad)


def test_history_is_idempotent_per_run_and_the_sparkline_scales(tmp_path):
    path = tmp_path / "h.jsonl"
    f = _fig()
    H.record(path, [H.entry("r1", "m", f, baseline="main@1", regressions=[])])
    H.record(path, [H.entry("r1", "m", _fig(latency_ms=12.0), baseline="main@1", regressions=[])])
    H.record(path, [H.entry("r2", "m", _fig(latency_ms=20.0), baseline="main@1", regressions=["latency"])])
    lines = H.read(path)
    assert [(e["run"], e["latency_ms"]) for e in lines] == [("r1", 12.0), ("r2", 20.0)]
    assert H.series(lines, "m", ("latency_ms",)) == [12.0, 20.0]
    assert H.sparkline([10.0, 20.0, None, 15.0]) == "▁█·▅" and H.sparkline([True, False, None]) == "✓✗·"
    path.write_text(path.read_text() + '{"torn": \n')
    assert len(H.read(path)) == 2


def test_a_deployment_that_cannot_be_rechecked_is_a_failure_not_a_silent_skip(tmp_path):
    from fake_github import make_deployment

    make_deployment(tmp_path / "deployments" / "ghost", model="ghost")
    out = []
    code = nightly_command(tmp_path, echo=out.append, run_id="n1")
    assert code == 1
    assert "| `ghost` | failure | re-check | checked | not checked |" in out[0]
    assert "no model folder with aipc.yaml for 'ghost'" in out[0]
    assert H.read(tmp_path / "deployments" / H.FILE)[0]["regressions"] == ["re-check"]


def test_the_report_stays_under_githubs_body_limit():
    from bot.nightly.report import render
    from bot.nightly.rules import Regression
    from bot.nightly.run import NightlyResult
    from bot.report import GITHUB_BODY_LIMIT

    res = NightlyResult("n1", "main", "`main` (abc)", total=300)
    res.regressions = [Regression(f"m{i}", "failure", "compile stage", ("stages", "compile"), "pass", "FAIL", "",
                                  "passed on main, fails now", "x" * 5000 + "the cause") for i in range(300)]
    body = render(res)
    assert len(body) < GITHUB_BODY_LIMIT - 1000 and "## aipc nightly: 300 regressions in 300 of 300" in body
    one = render(NightlyResult("n1", "main", "`main` (abc)", total=1, regressions=res.regressions[:1]))
    assert "the cause" in one and "characters cut" in one  # a long error keeps its tail


# ---------------------------------------------------------------------- the sharded night (nightly.yml)

def test_two_shards_each_with_a_regression_make_one_issue_and_one_history(repo, tmp_path, monkeypatch):
    """The workflow's three jobs in turn: plan → two shards (real rebuilds, one deployment each, both
    regressed) → merge, which posts one issue naming both and writes each model's night once."""
    from typer.testing import CliRunner

    from bot.cli import app

    for name in ("drift", "steady"):
        _accepted_earlier(repo, name)
    sh(repo, "commit", "-q", "-am", "both accepted under onnxruntime-qnn 2.6.0")
    cli = CliRunner()
    outputs = tmp_path / "github-output"
    planned = cli.invoke(app, ["nightly-plan", "--root", str(repo), "--shards", "2", "--output", str(outputs)])
    assert planned.exit_code == 0, planned.output
    out = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    matrix = json.loads(out["matrix"])["include"]
    assert out["count"] == "2" and out["max_parallel"] == "2"
    assert sorted(e["deployments"] for e in matrix) == ["drift", "steady"]
    assert all(e["labels"] == ["self-hosted", "linux", "x64", "htp-sim"] and e["of"] == 2 for e in matrix)

    history = repo / "deployments" / H.FILE
    shard_dir = tmp_path / "shards"
    for e in matrix:
        shard = cli.invoke(app, ["nightly", "--root", str(repo), "--deployments", e["deployments"], "--run-id",
                                 "night-7", "--tolerance", "latency_rel=5",
                                 "--results", str(shard_dir / f"shard-{e['shard']}" / "results.json")])
        assert shard.exit_code == 1, shard.output  # each shard found its own regression
        assert f"| `{e['deployments']}` | accuracy | y SQNR dB |" in shard.output
        assert "## aipc nightly: 1 regression in 1 of 1 deployment" in shard.output
    assert not history.exists()  # shards leave the history to the merge
    refused = cli.invoke(app, ["nightly", "--root", str(repo), "--deployments", "drift", "--results",
                               str(tmp_path / "x.json"), "--post", "issue"])
    assert refused.exit_code == 2 and "does not post" in refused.output

    bare = repo.parent / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    with serving(bare, monkeypatch) as fake:
        for _ in range(2):  # a re-run of the aggregate job changes nothing
            merged = cli.invoke(app, ["nightly-merge", str(shard_dir), "--root", str(repo), "--post", "issue"])
            assert merged.exit_code == 1, merged.output
        assert len(fake.issues) == 1 and len(fake.calls("POST", "/issues")) == 1
        (issue,) = fake.issues.values()
        assert issue["state"] == "open" and "## aipc nightly: 2 regressions in 2 of 2 deployments" in issue["body"]
        assert "| `drift` | accuracy | y SQNR dB |" in issue["body"]
        assert "| `steady` | accuracy | y SQNR dB |" in issue["body"]
    lines = H.read(history)
    assert sorted((e["run"], e["model"], tuple(e["regressions"])) for e in lines) == [
        ("night-7", "drift", ("y SQNR dB",)), ("night-7", "steady", ("y SQNR dB",))]

    # one deployment in two shards is a broken plan, not a night
    dup = shard_dir / "shard-3" / "results.json"
    dup.parent.mkdir()
    shutil.copy(shard_dir / "shard-1" / "results.json", dup)
    bad = cli.invoke(app, ["nightly-merge", str(shard_dir), "--root", str(repo)])
    assert bad.exit_code == 2 and "re-checked by two shards" in bad.output


def test_the_plan_deals_the_longest_first_and_gives_each_set_of_labels_its_own_runners():
    from bot.errors import BadInput
    from bot.nightly.shards import Deployment, labels_for, plan

    sim, phone = labels_for({"engine": "auto"}), labels_for({"engine": "adb", "soc": "SM8750"})
    assert phone == ("self-hosted", "linux", "x64", "device", "soc-sm8750")
    found = [Deployment(f"m{i}", sim, s) for i, s in enumerate([50, 40, 30, 20, 10, 10])] + \
            [Deployment("p0", phone, 5)]
    p = plan(found, shards=3, max_parallel=2)
    assert [(s.labels[-1], s.deployments, s.seconds) for s in p.shards] == [
        ("soc-sm8750", ["p0"], 5), ("htp-sim", ["m0", "m3", "m4"], 80), ("htp-sim", ["m1", "m2", "m5"], 80)]
    assert p.max_parallel == 2 and json.loads(p.outputs()["matrix"])["include"][1]["deployments"] == "m0 m3 m4"
    # no more shards than deployments; one shard per label set at least
    assert len(plan(found[:2], shards=8).shards) == 2 and len(plan(found, shards=1).shards) == 2
    with pytest.raises(BadInput):
        plan(found, shards=0)


def test_the_merge_reports_a_planned_deployment_whose_shard_sent_nothing(tmp_path):
    from bot.nightly import merge as M
    from bot.nightly.run import NightlyResult

    one = NightlyResult("r9", "main", "`main` (abc)", total=1, unchanged=1, deployments=["a"],
                        entries=[H.entry("r9", "a", _fig(), baseline="main@abc", regressions=[])])
    M.write(one, tmp_path / "s" / "shard-1.json")
    out = []
    code = M.merge_command([tmp_path / "s"], root=tmp_path, expected=["a", "b"], echo=out.append)
    assert code == 1 and "| `b` | failure | re-check |" in out[1] and "its shard uploaded no results" in out[1]
    assert "`a`" not in out[1] and "1 model unchanged." in out[1]
    assert [(e["model"], e["regressions"]) for e in H.read(tmp_path / "deployments" / H.FILE)] == [
        ("a", []), ("b", ["re-check"])]
    other = NightlyResult("r10", "main", "x", total=1, deployments=["b"])
    M.write(other, tmp_path / "s" / "shard-2.json")
    from bot.errors import BadInput
    with pytest.raises(BadInput, match="different runs"):
        M.merge([tmp_path / "s" / "shard-1.json", tmp_path / "s" / "shard-2.json"], history_path=tmp_path / "h")


def test_plan_and_merge_run_without_the_toolchain(tmp_path):
    """nightly.yml runs the plan and the aggregate on GitHub-hosted runners with the light CLI
    (.github/actions/aipc-cli): neither may import torch, onnx, onnxruntime or numpy."""
    import sys

    from bot.nightly import merge as M
    from bot.nightly.run import NightlyResult
    from fake_github import make_deployment

    make_deployment(tmp_path / "deployments" / "a", model="a")
    M.write(NightlyResult("r1", "main", "`main` (abc)", total=1, unchanged=1, deployments=["a"],
                          entries=[H.entry("r1", "a", _fig(), baseline="main@abc", regressions=[])]),
            tmp_path / "shards" / "shard-1.json")
    blocked = ("torch", "onnx", "onnxruntime", "numpy", "onnx_ir", "onnxscript", "matplotlib")
    probe = ("import sys\n"
             "class Block:\n"
             "    def find_spec(self, name, path=None, target=None):\n"
             f"        if name.split('.')[0] in {blocked!r}: raise ImportError('no toolchain here: ' + name)\n"
             "sys.meta_path.insert(0, Block())\n"
             "from bot.cli import app\n"
             "app(sys.argv[1:])\n")
    for args in (["nightly-plan", "--root", str(tmp_path), "--shards", "2"],
                 ["nightly-merge", str(tmp_path / "shards"), "--root", str(tmp_path), "--expected", "a"]):
        p = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=tmp_path)
        assert p.returncode == 0, p.stdout + p.stderr
    assert "no regressions (1 deployment)" in p.stdout
