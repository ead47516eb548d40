"""PR comment commands: parsing, and a revert that the next deployments respect."""

from __future__ import annotations

import json

import pytest

from bot.commands import Command, execute, parse
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
