"""Rendered texts carry the key of what they were rendered from: an unchanged re-run does not render (no
template is compiled or rendered, so jinja2 need not even be imported), and a change to what the report
shows, to a template or to the links renders again, and the new text shows the change."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.report import html_report, pr_body, render
from fake_github import make_deployment


@pytest.fixture
def renders(monkeypatch, tmp_path):
    """The templates in a copy this test may edit, and a count of the templates looked up to render."""
    templates = tmp_path / "templates"
    shutil.copytree(render.TEMPLATES, templates)
    monkeypatch.setattr(render, "TEMPLATES", templates)
    looked_up: list[str] = []
    real = render.env

    class Counting:
        def get_template(self, name):
            looked_up.append(name)
            return real().get_template(name)

    monkeypatch.setattr(render, "env", lambda: Counting())
    return templates, looked_up


def test_an_unchanged_html_report_is_not_rendered_again_and_a_changed_one_is(tmp_path, renders):
    templates, looked_up = renders
    m = make_deployment(tmp_path / "d")
    out = html_report(m, tmp_path / "report")
    first = out.read_text()
    assert looked_up == ["report.html.j2"] and "aipc-render-key" in first

    # the same manifest again, with only what the report does not show changed: nothing rendered
    again = {**m, "started": "2026-12-01T00:00:00Z",
             "stages": [{**s, "cached": True} for s in m["stages"]]}
    html_report(again, tmp_path / "report")
    assert looked_up == ["report.html.j2"] and out.read_text() == first

    # a figure the report shows: rendered again, and the new figure is in it
    changed = {**m, "stages": [dict(s, metrics={**s["metrics"], "latency_ms_median": 7.75})
                               if s["stage"] == "validate" else s for s in m["stages"]]}
    html_report(changed, tmp_path / "report")
    assert looked_up == ["report.html.j2"] * 2 and "7.75" in out.read_text() and "7.75" not in first

    # a template: rendered again, with the template's new text
    tpl = templates / "report.html.j2"
    tpl.write_text(tpl.read_text().replace("</body>", "<p>edited template</p>\n</body>"))
    html_report(changed, tmp_path / "report")
    assert looked_up == ["report.html.j2"] * 3 and "edited template" in out.read_text()


def test_the_html_report_is_rendered_when_the_file_was_edited_by_hand(tmp_path, renders):
    _, looked_up = renders
    m = make_deployment(tmp_path / "d")
    out = html_report(m, tmp_path / "report")
    good = out.read_text()
    out.write_text(good.replace("<body>", "<body>hand edit", 1).rsplit("<!--", 1)[0])  # key gone
    html_report(m, tmp_path / "report")
    assert looked_up == ["report.html.j2"] * 2 and out.read_text() == good


def test_an_unchanged_pr_body_comes_from_its_cache_file_and_a_changed_one_is_rendered(tmp_path, renders):
    templates, looked_up = renders
    m = make_deployment(tmp_path / "d")
    cache = tmp_path / "d" / ".work" / "pr_body.md"
    images = {"seconds": "s.png"}
    body = pr_body(m, images=images, cache=cache)
    assert looked_up == ["pr_body.md.j2"] and cache.is_file()
    assert body == pr_body(m, images=images)  # the cache changes nothing in the text
    del looked_up[1:]

    assert pr_body({**m, "stages": [{**s, "cached": True} for s in m["stages"]]}, images=images, cache=cache) == body
    assert looked_up == ["pr_body.md.j2"]  # an unchanged re-run: not rendered

    moved = pr_body(m, images={"seconds": "elsewhere.png"}, cache=cache)
    assert looked_up == ["pr_body.md.j2"] * 2 and "elsewhere.png" in moved

    worse = make_deployment(tmp_path / "d2", cosine=0.9123)
    text = pr_body(worse, images={"seconds": "elsewhere.png"}, cache=cache)
    assert looked_up == ["pr_body.md.j2"] * 3 and "0.9123" in text

    tpl = templates / "pr_body.md.j2"
    tpl.write_text(tpl.read_text() + "\nedited template\n")
    text = pr_body(worse, images={"seconds": "elsewhere.png"}, cache=cache)
    assert looked_up == ["pr_body.md.j2"] * 4 and "edited template" in text


def test_the_render_key_covers_the_report_code_and_every_template(tmp_path, monkeypatch):
    templates = tmp_path / "templates"
    shutil.copytree(render.TEMPLATES, templates)
    monkeypatch.setattr(render, "TEMPLATES", templates)
    base = render.render_key("k", {"a": 1})
    assert render.render_key("k", {"a": 1}) == base and render.render_key("k", {"a": 2}) != base
    macros = templates / "_macros.md.j2"  # included, not rendered by name: still part of the key
    macros.write_text(macros.read_text() + "\n")
    assert render.render_key("k", {"a": 1}) != base
    code = tmp_path / "view.py"
    code.write_text(Path(render.view.__file__).read_text())
    monkeypatch.setattr(render, "REPORT_CODE", (code, Path(render.__file__)))
    keyed = render.render_key("k", {"a": 1})
    code.write_text(code.read_text() + "\n# changed\n")
    assert render.render_key("k", {"a": 1}) != keyed
