"""The typed manifest (`bot.manifest`): what earlier versions wrote still loads, and reads back unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.manifest import Manifest
from bot.parts import end_to_end, parts

SAMPLES = Path(__file__).resolve().parents[1] / "docs" / "pr-samples"


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*/manifest.json")), ids=lambda p: p.parent.name)
def test_manifests_written_by_earlier_versions_load_and_dump_back_the_same(path):
    """The samples were written by earlier versions (no `requested`/`deployed` sections, old
    composites): each loads, and `dump()` gives back the same keys and values, nothing invented."""
    data = json.loads(path.read_text())
    m = Manifest.parse(data)
    assert m.dump() == data
    assert m.model == path.parent.name and (m.stages is not None or m.parts is not None)


def test_an_old_single_graph_manifest_with_few_sections_loads_with_defaults():
    m = Manifest.parse({"model": "old", "status": "deployed",
                        "stages": [{"stage": "load", "passed": True, "seconds": 1}], "unknown_section": {"x": 1}})
    assert m.stages[0].seconds == 1.0 and m.stages[0].cached is False and m.repairs == [] and m.e2e == []
    assert m.dump() == {"model": "old", "status": "deployed",
                        "stages": [{"stage": "load", "passed": True, "seconds": 1.0}], "unknown_section": {"x": 1}}
    [p] = parts(m)
    assert p.at_root and p.stages[0].stage == "load" and p.stages[0].seconds == 1.0 and p.row is None
    assert end_to_end(m) == []


def test_an_old_composite_without_kind_is_read_as_parts_in_folders():
    """Composites written before `kind: multi` existed list `parts` and no `stages`."""
    m = {"model": "combo", "status": "deployed", "seconds_total": 3,
         "parts": [{"graph": "enc", "dir": "enc", "passed": True, "seconds": 1.5, "validate": {"passed": True},
                    "repair_records": [{"n": 1, "repair": "skill-patch", "level": "source", "kept": True}]}],
         "e2e": [{"name": "decode", "passed": True, "sequences": 4, "checks": []}]}
    [p] = parts(m)
    assert not p.at_root and p.dir == "enc" and p.row.validate_ == {"passed": True} and p.row.seconds == 1.5
    assert p.stages == []  # its stages are in its own manifest, in its folder
    assert p.repairs == [{"n": 1, "repair": "skill-patch", "level": "source", "kept": True}]
    assert end_to_end(m) == [{"name": "decode", "passed": True, "sequences": 4, "checks": []}]
    assert Manifest.parse(m).dump() == json.loads(json.dumps(m))


def test_a_section_of_the_wrong_type_is_refused_by_its_path():
    with pytest.raises(ValidationError, match=r"stages\.0\.passed"):
        Manifest.parse({"model": "m", "stages": [{"stage": "load", "passed": "perhaps"}]})


def test_read_returns_none_for_a_missing_or_cut_off_manifest(tmp_path):
    assert Manifest.read(tmp_path) is None
    (tmp_path / "manifest.json").write_text('{"model": "m", "sta')
    assert Manifest.read(tmp_path) is None
    (tmp_path / "manifest.json").write_text('{"model": "m", "status": "failed"}')
    assert Manifest.read(tmp_path).status == "failed"


def test_nones_that_earlier_versions_wrote_load_and_render():
    """A repair record without before/after or diff, a part and a check without `passed`: loaded, and
    the PR body treats them as absent instead of the deploy or the nightly stopping on them."""
    from bot.report import pr_body

    single = {"model": "old", "status": "failed", "stages": [{"stage": "load", "passed": True}],
              "repairs": [{"n": 1, "repair": "fp16", "level": "quant", "before": None, "after": None, "diff": None,
                           "reason": None, "kept": None}]}
    assert "#### 1. `fp16` (quant) — reverted" in pr_body(single)
    several = {"model": "combo", "kind": "multi", "status": "failed",
               "parts": [{"graph": "enc", "dir": "enc", "passed": None, "seconds": None}],
               "e2e": [{"name": "decode", "passed": None, "checks": []}]}
    body = pr_body(several)
    assert "| Parts | 0 of 1 deployed (enc) |" in body and "❌ decode" in body
