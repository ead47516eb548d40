"""Reports: PR body contents and size limit, the HTML report, the nightly command, the samples."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bot.report import GITHUB_BODY_LIMIT, html_report, pr_body
from bot.cli_actions import nightly_command, report_command
from fake_github import make_deployment, repair

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "docs" / "pr-samples"
LOC = {"first_bad_layer": "/conv3/Conv_output_0",
       "layers": [{"tensor": f"/conv{i}/Conv_output_0", "op": "Conv", "cosine": c, "sqnr_db": s}
                  for i, (c, s) in enumerate([(0.9999, 40.1), (0.999, 33.0), (0.99, 25.0), (0.62, 3.1), (0.55, 2.0)])]}


def test_pr_body_shows_stages_metrics_repairs_and_llm(tmp_path):
    m = make_deployment(tmp_path / "d", repairs=[repair(1), repair(2, kept=False)], localization=LOC,
                        llm={"calls": 3, "cost_usd": 0.0421, "model": "gpt-x", "prompt_tokens": 5120})
    body = pr_body(m, images={"seconds": "s.png", "layers": "l.png"})
    for i, s in enumerate(["load", "export", "optimize", "compat", "quantize", "compile", "validate", "package"]):
        assert f"| {s} | ✅ passed | {0.1 * (i + 1):.2f} |" in body
    assert "| out cosine | 0.9991 | ≥ 0.95 | ✅ |" in body
    assert "| out max-abs | 0.01 | ≤ 0.05 | ✅ |" in body
    assert "#### 1. `resize-nearest` (graph) — kept" in body and "#### 2. `resize-nearest` (graph) — reverted" in body
    assert "HTP rejected Resize (bilinear, align_corners)" in body
    assert "| validate.out.cosine | 0.61 | 0.9991 |" in body
    assert "<details><summary>Diff: <code>patches/01-graph-resize-nearest.patch</code>" in body
    assert "+x = up_nearest(x)" in body
    assert "3 calls, USD 0.0421" in body and "model: gpt-x" in body
    assert "First bad layer: **/conv3/Conv_output_0**" in body
    assert "![seconds per stage](s.png)" in body and "![per-layer error](l.png)" in body
    assert "| Repairs | 2 tried, 1 kept |" in body


def test_failed_run_body_shows_the_failure_and_what_did_not_run(tmp_path):
    m = make_deployment(tmp_path / "d", status="failed", log="line\n" * 20 + "RuntimeError: boom\n")
    body = pr_body(m)
    assert "## ❌ `tiny`" in body and "needs a person" in body
    assert "| export | ❌ failed |" in body and "| package | ⏭️ not run | — | |" in body
    assert "### Failure: `export` (export_error)" in body and "RuntimeError: boom" in body
    assert "Metrics against thresholds" not in body  # validate never ran


def test_markdown_cells_cannot_break_the_table(tmp_path):
    m = make_deployment(tmp_path / "d")
    m["stages"][6]["checks"][0]["name"] = "out | cosine\nsecond line"
    body = pr_body(m)
    assert "| out \\| cosine second line | 0.9991 |" in body


def test_diff_with_backticks_cannot_close_its_fence(tmp_path):
    m = make_deployment(tmp_path / "d", repairs=[repair(1, diff="+ s = '```'\n")])
    body = pr_body(m)
    assert "````diff\n+ s = '```'\n````" in body


def test_logs_are_cut_before_diffs_to_fit_the_limit(tmp_path):
    diff = "".join(f"+line {i}\n" for i in range(1500))  # ~15k, fits alone
    m = make_deployment(tmp_path / "d", status="failed", log="x" * 200_000, repairs=[repair(1, diff=diff)])
    body = pr_body(m)
    assert len(body) <= GITHUB_BODY_LIMIT
    assert diff in body  # the diff survived whole
    assert "characters cut to fit the size limit" in body or "characters left out" in body
    assert "Logs and diffs were shortened" in body


def test_diffs_are_cut_when_logs_are_not_enough(tmp_path):
    big = "".join(f"+{i:08d} {'y' * 60}\n" for i in range(3000))  # ~210k each
    m = make_deployment(tmp_path / "d", status="failed", log="z" * 100_000,
                        repairs=[repair(i, diff=big) for i in range(1, 6)])
    body = pr_body(m)
    assert len(body) <= GITHUB_BODY_LIMIT
    assert body.count("#### ") == 5  # every repair is still listed
    assert big not in body and "+00000000" in body  # the head of each diff is kept


class _Checker(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.images, self.problems = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()


@pytest.mark.parametrize("with_layers", [True, False])
def test_html_report_is_well_formed_and_its_images_exist(tmp_path, with_layers):
    m = make_deployment(tmp_path / "d", repairs=[repair(1, diff="+ <script>alert(1)</script>\n")],
                        localization=LOC if with_layers else None)
    path = html_report(m, tmp_path / "report")
    c = _Checker()
    c.feed(path.read_text())
    c.close()
    assert c.problems == [] and c.stack == []
    expected = {"seconds_per_stage.png"} | ({"layer_error.png"} if with_layers else set())
    assert set(c.images) == expected
    for img in c.images:
        data = (path.parent / img).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    assert "<script>alert" not in path.read_text()  # diffs are escaped, not injected


def test_plots_are_byte_stable(tmp_path):
    """Same numbers → same PNG bytes, or every re-run would commit new plots."""
    m = make_deployment(tmp_path / "d", localization=LOC)
    a = html_report(m, tmp_path / "a").parent
    b = html_report(m, tmp_path / "b").parent
    for name in ("seconds_per_stage.png", "layer_error.png", "index.html"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def _figures_of(manifest_path: Path, **changes) -> dict:
    """What a re-check would measure if nothing changed, with `changes` applied (a stand-in for the
    real rebuild, which tests/test_nightly.py runs on deployed models)."""
    from bot.nightly.figures import from_manifest

    f = from_manifest(json.loads(manifest_path.read_text()))
    f.update(changes)
    return f


def test_nightly_command_rechecks_every_deployment(tmp_path, monkeypatch):
    root = tmp_path
    for name in ("alpha", "beta"):
        (root / "models" / name).mkdir(parents=True)
        (root / "models" / name / "aipc.yaml").write_text(f"name: {name}\n")
        make_deployment(root / "deployments" / name, model=name, cosine=0.999)
    seen = []

    def fake_recheck(root_, unit):
        seen.append(unit.label)
        mf = unit.dep / "manifest.json"
        if unit.label == "alpha":
            return _figures_of(mf)
        return _figures_of(mf, stages={"compat": True, "compile": True, "validate": False},
                           failures={"validate": "out below threshold on ort-qnn (worst cosine 0.91)"},
                           outputs={"out": {"cosine": 0.91, "sqnr_db": 30.5}}, checks={"out cosine": False})

    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    out = []
    code = nightly_command(root, out_file=tmp_path / "n.md", echo=out.append, recheck=fake_recheck, run_id="r1")
    assert code == 1 and seen == ["alpha", "beta"]
    assert "compared with the figures accepted on the working tree (not a git repository)" in out[0]
    assert (tmp_path / "n.md").read_text() == out[0] and out[0] in summary.read_text()
    assert "| `beta` | failure | validate stage | pass | FAIL |" in out[0]
    assert "| `beta` | accuracy | out cosine | 0.999 | 0.91 | -0.089 | drop > 0.001 |" in out[0]
    assert "worst cosine 0.91" in summary.read_text()
    assert "`alpha`" not in out[0] and "1 model unchanged." in out[0]
    # `--summary "$GITHUB_STEP_SUMMARY"` (as the workflow calls it) writes the report once, not twice
    nightly_command(root, out_file=summary, echo=out.append, recheck=fake_recheck, run_id="r2")
    assert summary.read_text().count("## aipc nightly") == 1


def test_nightly_command_rechecks_composites_part_by_part(tmp_path):
    for name in ("alpha", "combo"):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "aipc.yaml").write_text(f"name: {name}\n")
    make_deployment(tmp_path / "deployments" / "alpha", model="alpha")
    (tmp_path / "deployments" / "combo").mkdir(parents=True)
    combo = composite_manifest()
    (tmp_path / "deployments" / "combo" / "manifest.json").write_text(json.dumps(combo))
    for part in combo["parts"][:2]:  # the third part has no accepted manifest: it is new, not a regression
        make_deployment(tmp_path / "deployments" / "combo" / part["dir"], model=f"combo.{part['dir']}")
    seen = []

    def fake_recheck(root_, unit):
        seen.append(unit.label)
        return _figures_of(unit.dep / "manifest.json") if (unit.dep / "manifest.json").exists() else {}

    out = []
    code = nightly_command(tmp_path, echo=out.append, recheck=fake_recheck, run_id="r1")
    assert seen == ["alpha", "combo/text_encoder", "combo/detector/r64", "combo/detector/r96"] and code == 0
    assert "no regressions (4 deployments)" in out[0] and "3 models unchanged." in out[0]
    assert "No accepted figures yet (nothing to compare): `combo/detector/r96`" in out[0]


def test_report_command_renders_an_existing_deployment(tmp_path):
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    (tmp_path / "models" / "tiny" / "model.py").write_text("def build():\n    pass\n")
    (tmp_path / "models" / "tiny" / "aipc.yaml").write_text(
        "name: tiny\nentry: model.py:build\ninputs:\n  - name: x\n    shape: [1, 3, 8, 8]\noutputs: [out]\n")
    dep = tmp_path / "dep"
    make_deployment(dep)
    out = []
    code = report_command(tmp_path / "models" / "tiny", out_dir=dep, echo=out.append)
    assert code == 0 and "| validate | ✅ passed |" in out[0]
    assert (dep / "report" / "index.html").is_file() and (dep / "report" / "seconds_per_stage.png").is_file()


def test_every_example_model_has_a_pr_sample_rendered_by_the_current_templates():
    models = sorted(p.parent.name for p in (ROOT / "models").glob("*/aipc.yaml"))
    samples = sorted(p.parent.name for p in SAMPLES.glob("*/manifest.json"))
    assert models and set(models) <= set(samples), f"docs/pr-samples lacks {set(models) - set(samples)}"
    for name in samples:
        md = SAMPLES / f"{name}.md"
        m = json.loads((SAMPLES / name / "manifest.json").read_text())
        assert m["model"] == name
        expected = pr_body(m, images={"seconds": f"{name}/seconds_per_stage.png"},
                           links={"HTML report": f"{name}/index.html"})
        assert md.read_text() == expected, f"{md} is stale: python -m bot.report.pr_samples <deployment>"
        assert (SAMPLES / name / "seconds_per_stage.png").is_file() and (SAMPLES / name / "index.html").is_file()
        if (m.get("localization") or {}).get("layers"):
            assert (SAMPLES / name / "layer_error.png").is_file()


# -- composite deployments (bot.compose): parts, end-to-end checks, weight sharing -----------------
def _part(graph, variant, *, passed=True, cosine=0.9995, repairs=(), failure=None, nbytes=86016):
    d = "/".join(x for x in (graph, variant) if x)
    row = {"graph": graph, "variant": variant, "dir": d, "inputs": {"image": [1, 3, 64, 64]},
           "status": "deployed" if passed else "failed", "passed": passed, "seconds": 1.75, "precision": "w8a16",
           "repairs": len(repairs), "repair_records": list(repairs),
           "stage_seconds": {"load": 0.1, "export": 0.2}}
    if passed:
        row["binaries"] = {f"{d}/package/model_ctx_qnn.bin": {"bytes": nbytes, "sha256": "ab" * 32}}
        row["validate"] = {"passed": True, "latency_ms_median": 75.45,
                           "outputs": {"scores": {"cosine": cosine, "sqnr_db": 44.1}}}
    if failure:
        row["failure"] = failure
    return row


def composite_manifest(*, status="deployed", diff="--- a/model.py\n+++ b/model.py\n@@\n-x = acos(y)\n+x = atan2(s, y)\n"):
    parts = [_part("text_encoder", None, nbytes=61440),
             _part("detector", "r64", repairs=[dict(repair(1, diff=diff), repair="skill-patch", level="source")]),
             _part("detector", "r96", cosine=0.9991)]
    e2e = [{"name": "decode", "passed": True, "seconds": 0.9, "sequences": 4, "sequences_equal": 4,
            "tokens_per_sequence": 8, "seconds_per_token": 0.00656, "token_agreement": 1.0,
            "checks": [{"name": "decode_loop.py runs on the compiled graphs", "passed": True, "value": 0, "detail": ""},
                       {"name": "token agreement with the PyTorch greedy decode", "passed": True, "value": 1.0,
                        "threshold": 1.0}]},
           {"name": "chain text_encoder/detector/r64", "passed": True, "samples": 2, "seconds": 0.48,
            "metrics": {"scores": {"cosine": 0.999982}},
            "checks": [{"name": "scores cosine end to end (text_encoder/detector/r64)", "passed": True,
                        "value": 0.999982, "threshold": 0.95}]}]
    if status == "failed":
        parts[2] = _part("detector", "r96", passed=False, failure={
            "stage": "compat", "kind": "unsupported_op", "message": "1 node(s) fall back to the CPU",
            "nodes": ["Acos /Acos: HTP has no Acos"]})
        e2e = []
    return {"model": "combo", "kind": "multi", "backend": "ort-qnn", "status": status,
            "target": {"runtime": "qnn", "backend": "htp", "soc": "SM8650", "precision": "w8a16"},
            "versions": {"onnxruntime": "1.22"}, "parts": parts, "e2e": e2e, "seconds_total": 9.27,
            "weight_sharing": {"detector": {"option": "ep.share_ep_contexts=1", "variants": ["r64", "r96"],
                                            "generated": True, "shared_bytes": 139264, "separate_bytes": 176128,
                                            "loads": False, "matches_separate": False, "usable": False,
                                            "error": "child exited with -11 (segmentation fault)",
                                            "deployed": "one binary per variant"}}}


def test_composite_pr_body_shows_parts_end_to_end_checks_sharing_and_part_repairs():
    from bot.report import pr_title

    m = composite_manifest()
    body = pr_body(m, images={"seconds": "s.png"})
    assert pr_title(m) == "aipc: combo → QNN HTP SM8650 w8a16 (deployed)"
    assert "## ✅ `combo` → QNN HTP: **deployed**" in body
    assert "| Parts | 3 of 3 deployed (text_encoder, detector/r64, detector/r96) |" in body
    assert "| End-to-end checks | 2 of 2 passed |" in body and "| Repairs | 1 tried, 1 kept |" in body
    assert "| text_encoder | — | ✅ deployed | 1.75 | scores: cosine 0.9995; 75.45 ms | 60 KiB |  |" in body
    assert "| detector | r64 | ✅ deployed | 1.75 | scores: cosine 0.9995; 75.45 ms | 84 KiB | 1 tried, 1 kept |" in body
    assert "4/4 sequences identical to PyTorch (8 tokens each); 6.56 ms per token on the backend." in body
    assert "| token agreement with the PyTorch greedy decode | 1 | ≥ 1 | ✅ |" in body
    assert "| decode_loop.py runs on the compiled graphs | 0 | — | ✅ |" in body
    assert "| scores cosine end to end (text_encoder/detector/r64) | 0.999982 | ≥ 0.95 | ✅ |" in body
    assert "⚠️ shared binary generated but does not load | 136 KiB / 172 KiB | one binary per variant |" in body
    assert "segmentation fault" in body
    # each part's repairs, collapsed, with the single-graph repair rendering and the part's patch path
    assert "<details><summary><code>detector/r64</code>: 1 tried, 1 kept</summary>" in body
    assert "#### 1. `skill-patch` (source) — kept" in body and "+x = atan2(s, y)" in body
    assert "<summary>Diff: <code>detector/r64/patches/01-source-skill-patch.patch</code>" in body
    assert "![seconds per part](s.png)" in body and "| onnxruntime | 1.22 |" in body
    assert "### Stages" not in body and "needs a person" not in body


def test_failed_composite_names_the_part_and_its_rejected_nodes():
    from bot.report.view import labels

    m = composite_manifest(status="failed")
    body = pr_body(m)
    assert "## ❌ `combo`" in body and "| Parts | 2 of 3 deployed" in body
    assert "| End-to-end checks | none defined |" in body
    assert "needs a person: `detector/r96 / compat` failed (unsupported_op)" in body
    assert "### Failure: `detector/r96 / compat` (unsupported_op)" in body
    assert "| /Acos | Acos | HTP has no Acos |" in body
    assert "| detector | r96 | ❌ failed | 1.75 | compat: 1 node(s) fall back to the CPU | — |  |" in body
    assert labels(m) == ["aipc", "aipc:repaired", "aipc:needs-human"]


def test_composite_body_cuts_part_diffs_to_fit_the_limit():
    big = "".join(f"+{i:08d} {'y' * 60}\n" for i in range(3000))
    m = composite_manifest(diff=big)
    for p in m["parts"]:
        p["repair_records"] = [dict(repair(i, diff=big), repair="r") for i in range(1, 4)]
    body = pr_body(m)
    assert len(body) <= GITHUB_BODY_LIMIT and body.count("#### ") == 9 + 2  # 9 repairs + 2 e2e headings
    assert "+00000000" in body and "Logs and diffs were shortened" in body


def test_composite_html_report_is_well_formed(tmp_path):
    m = composite_manifest(diff="+ <script>alert(1)</script>\n")
    path = html_report(m, tmp_path / "report")
    c = _Checker()
    c.feed(path.read_text())
    c.close()
    assert c.problems == [] and c.stack == [] and c.images == ["seconds_per_stage.png"]
    text = path.read_text()
    assert "<h2>Parts</h2>" in text and "detector/r64" in text and "one binary per variant" in text
    assert "token agreement with the PyTorch greedy decode" in text and "<script>alert" not in text
    assert (path.parent / "seconds_per_stage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (path.parent / "layer_error.png").exists()


@pytest.mark.htp
def test_every_deploy_writes_its_report_without_a_forge_and_outside_git(tiny_model, tmp_path):
    """The deploy renders the report from the manifest itself: with AIPC_FORGE=off (conftest) and a
    model folder outside any git repository, report/ is still written, and it is what the manifest renders."""
    from bot.deploy import deploy
    from bot.deployment_dir import repo_root

    assert repo_root(tiny_model) is None
    out = tmp_path / "out"
    outcome = deploy(tiny_model, out_dir=out, repair=False)
    assert outcome.passed
    html = out / "report" / "index.html"
    assert html.is_file() and (out / "report" / "seconds_per_stage.png").is_file()
    again = html_report(json.loads((out / "manifest.json").read_text()), tmp_path / "again")
    assert html.read_text() == again.read_text()


def test_one_view_builder_shows_a_single_graph_as_one_part_at_the_root(tmp_path):
    """A single graph and a deployment of parts go through the same builder: the same keys, the single
    graph's stages at the root, the parts' rows in their folders, and no kind flag left to branch on."""
    from bot.report.view import build

    single, several = build(make_deployment(tmp_path / "d")), build(composite_manifest())
    assert set(single) == set(several) and "composite" not in single
    assert single["stages"] and not single["parts"] and not single["parts_in_folders"] and single["per"] == "stage"
    assert several["parts"] and not several["stages"] and several["parts_in_folders"] and several["per"] == "part"


def test_run_time_noise_is_one_rule_for_every_manifest():
    """The branch keeps its manifest when only noise changed: start and wall times and cache flags
    everywhere, the timings measured over parts; a stage that ran again in other seconds is news."""
    from bot.forge.branch import _quiet

    single = {"model": "m", "started": "t0", "seconds_total": 1.0,
              "stages": [{"stage": "load", "seconds": 0.5, "cached": False}]}
    assert _quiet(single) == _quiet({**single, "started": "t1", "seconds_total": 2.0,
                                     "stages": [{"stage": "load", "seconds": 0.5, "cached": True}]})
    assert _quiet(single) != _quiet({**single, "stages": [{"stage": "load", "seconds": 0.7, "cached": False}]})
    m = composite_manifest()
    again = json.loads(json.dumps(m))
    again["parts"][0]["seconds"], again["e2e"][0]["seconds_per_token"] = 9.9, 0.5
    assert _quiet(m) == _quiet(again)
    again["parts"][0]["passed"] = False
    assert _quiet(m) != _quiet(again)


def test_an_attempt_names_the_repairs_the_cpu_screen_composed_into_it(tmp_path):
    """silero-vad's one device attempt ran w8a16-all with magnitude-form on top: the report says both."""
    composite = dict(repair(1), repair="w8a16-all", level="quant", composed=["magnitude-form"])
    body = pr_body(make_deployment(tmp_path / "d", repairs=[composite]))
    assert "#### 1. `w8a16-all + magnitude-form` (quant) — kept" in body
    page = html_report(make_deployment(tmp_path / "h", repairs=[composite]), tmp_path / "report").read_text()
    assert "1. w8a16-all + magnitude-form (quant): kept</h" in page
