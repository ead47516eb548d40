"""PR comment commands: parsing, and a revert that the next deployments respect."""

from __future__ import annotations

import json

import pytest

from bot.cli_actions import execute
from bot.pr_commands import Command, parse
from bot.errors import BadInput
from tests.conftest import write_model
from tests.test_repair_loop import OUTLIER


def test_parse_commands():
    assert parse("/aipc retry") == Command("retry")
    assert parse("thanks!\n/aipc revert int16-localized\n") == Command("revert", "int16-localized")
    with pytest.raises(BadInput, match="no repair 'make-it-work'"):
        parse("/aipc revert make-it-work")
    with pytest.raises(BadInput, match="not an aipc command"):
        parse("/aipc deploy-everything")
    with pytest.raises(BadInput, match="needs the id"):
        parse("/aipc revert")


@pytest.mark.htp
def test_revert_redeploys_without_the_repair_and_remembers(tmp_path, monkeypatch):
    monkeypatch.setenv("AIPC_FORGE", "off")
    folder = write_model(tmp_path / "m", {"target": {"precision": "w8a8"}}, code=OUTLIER)
    out = tmp_path / "o"
    first = execute(Command("retry"), folder, out_dir=out)
    assert [a["repair"] for a in first.manifest["repairs"] if a["kept"]] == ["int16-localized"]

    reverted = execute(Command("revert", "int16-localized"), folder, out_dir=out)
    m = json.loads((out / "manifest.json").read_text())
    assert m["reverted"] == ["int16-localized"]
    assert "int16-localized" not in [a["repair"] for a in m["repairs"]]
    assert reverted.passed and m["repairs"][0]["repair"] == "w8a16-all"

    again = execute(Command("retry"), folder, out_dir=out)  # a later run still respects the revert
    assert "int16-localized" not in [a["repair"] for a in again.manifest["repairs"]]


def test_parse_rerun_and_approve():
    assert parse("/aipc rerun quantize") == Command("rerun", stage="quantize")
    assert parse("/aipc approve") == Command("approve")
    assert parse("/aipc approve 0123abcd") == Command("approve", sha="0123abcd")
    with pytest.raises(BadInput) as e:
        parse("/aipc rerun quantise")
    assert "unknown stage 'quantise'" in str(e.value) and "load, export, optimize" in e.value.paragraph()
    with pytest.raises(BadInput, match="needs the stage"):
        parse("/aipc rerun")
    with pytest.raises(BadInput, match="optional commit sha"):
        parse("/aipc approve yes-please")
    with pytest.raises(BadInput, match="takes no argument"):
        parse("/aipc retry now")


def test_bot_branches_name_their_model_and_contributor_pr():
    from bot.pr_commands import parse_bot_branch

    assert parse_bot_branch("aipc/esrgan_tiny") == ("esrgan_tiny", None)
    assert parse_bot_branch("aipc/esrgan_tiny-pr12") == ("esrgan_tiny", 12)
    assert parse_bot_branch("feature/new-model") is None


@pytest.mark.htp
def test_rerun_from_a_stage_runs_it_and_the_later_ones_again(tiny_model, tmp_path):
    out = tmp_path / "o"
    first = execute(Command("retry"), tiny_model, out_dir=out)
    assert first.passed
    before = json.loads((out / "manifest.json").read_text())
    # a mark in every store entry tells a kept entry from a remade one (an inode number does not: the
    # filesystem reuses the one a dropped entry freed for the entry made right after it)
    for entry in (e for e in (out / ".work").iterdir() if e.is_dir()):
        (entry / ".before-rerun").touch()

    said = []
    again = execute(Command("rerun", stage="quantize"), tiny_model, out_dir=out, say=said.append)
    assert again.passed
    m = json.loads((out / "manifest.json").read_text())
    cached = {s["stage"]: s["cached"] for s in m["stages"]}
    assert cached == {"load": True, "export": True, "optimize": True, "compat": True,
                      "quantize": False, "compile": False, "validate": False, "package": False}
    assert all(s["seconds"] > 0 for s in m["stages"] if not s["cached"])
    # same inputs give the same keys up to the rerun stage: the earlier stages are the very same store
    # entries; the rerun stage and the later ones are new entries (a new folder, or a new key where the
    # context binary's bytes differ from run to run)
    keys = {s["stage"]: s["key"] for s in m["stages"]}
    old_keys = {s["stage"]: s["key"] for s in before["stages"]}
    assert [keys[s] == old_keys[s] for s in ("load", "export", "optimize", "compat", "quantize")] == [True] * 5
    for stage, key in keys.items():
        name = f"{stage}-{key[:16]}"
        reused = (out / ".work" / name / ".before-rerun").exists()
        assert reused == (stage in ("load", "export", "optimize", "compat")), stage
    assert any("re-running quantize, compile, validate, package" in s for s in said)

    third = execute(Command("retry"), tiny_model, out_dir=out)  # and a plain retry reuses everything again
    assert all(r.cached for r in third.results)


def test_forget_from_an_unknown_stage_lists_the_known_ones(tmp_path):
    from bot.pipeline.runner import forget_from

    with pytest.raises(BadInput) as e:
        forget_from(tmp_path, "deploy")
    assert "known stages: load, export" in e.value.paragraph()
