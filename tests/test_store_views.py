"""A cached re-run leaves what is already right alone: a stage folder that already is the view of its
stored result is not relinked, and a manifest section set to what it holds does not rewrite the file."""

from __future__ import annotations

import json
import os

from bot.pipeline import manifest as manifest_mod
from bot.pipeline.manifest import update_section
from bot.store import link_view


def _stored(tmp_path):
    src = tmp_path / ".work" / "export-0123"
    (src / "sub").mkdir(parents=True)
    (src / "model.onnx").write_bytes(b"graph")
    (src / "sub" / "log.txt").write_text("log")
    return src


def test_a_view_that_already_links_the_stored_files_is_left_as_it_is(tmp_path):
    src, dest = _stored(tmp_path), tmp_path / "export"
    link_view(src, dest)
    assert (dest / "model.onnx").stat().st_ino == (src / "model.onnx").stat().st_ino  # a hard-linked view
    folder = dest.stat().st_ino
    link_view(src, dest)
    assert dest.stat().st_ino == folder  # not replaced: nothing to do


def test_a_view_whose_files_differ_from_the_store_is_made_again(tmp_path):
    src, dest = _stored(tmp_path), tmp_path / "export"
    link_view(src, dest)
    os.unlink(dest / "model.onnx")
    (dest / "model.onnx").write_bytes(b"graph")  # same bytes, but a file of its own: not the stored one
    (dest / "stray.txt").write_text("left by hand")
    link_view(src, dest)
    assert (dest / "model.onnx").stat().st_ino == (src / "model.onnx").stat().st_ino
    assert not (dest / "stray.txt").exists()
    (src / "new.txt").write_text("a stored file the view lacks")
    link_view(src, dest)
    assert (dest / "new.txt").read_text() == "a stored file the view lacks"


def test_a_manifest_section_set_to_what_it_holds_does_not_rewrite_the_file(tmp_path, monkeypatch):
    (tmp_path / "manifest.json").write_text(json.dumps({"model": "m", "llm": {"calls": 0, "usd": 0.0}}))
    writes = []
    real = manifest_mod.write_json
    monkeypatch.setattr(manifest_mod, "write_json", lambda p, o: (writes.append(p), real(p, o)))
    update_section(tmp_path, "llm", {"calls": 0, "usd": 0.0})
    update_section(tmp_path, "repairs", [])  # a section that is not there yet is written, even empty
    assert len(writes) == 1
    update_section(tmp_path, "repairs", ())  # the same JSON as the list it holds
    assert len(writes) == 1
    update_section(tmp_path, "llm", {"calls": 1, "usd": 0.01})
    assert len(writes) == 2
    assert json.loads((tmp_path / "manifest.json").read_text())["llm"] == {"calls": 1, "usd": 0.01}
