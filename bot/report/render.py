"""Render the templates; keep bodies under the forge's limit by cutting logs first, then diffs."""

from __future__ import annotations

from pathlib import Path

import jinja2

from bot import plots
from bot.report import view

TEMPLATES = Path(__file__).parent / "templates"
GITHUB_BODY_LIMIT = 65536
# Headroom under the hard limit for the hidden markers the forge appends (hash, model).
BODY_BUDGET = 60000
MARKER = "<!-- aipc:report -->"


def _clip(text: str, limit: int) -> str:
    """Keep the head and the tail (where tracebacks put the cause), say how much was cut."""
    text = text or ""
    if limit is None or len(text) <= limit:
        return text
    if limit <= 0:
        return f"[{len(text)} characters left out to fit the size limit]"
    head, tail = limit * 2 // 3, limit // 3
    return f"{text[:head]}\n[… {len(text) - head - tail} characters cut to fit the size limit …]\n{text[-tail:]}"


def _cell(v) -> str:
    """A Markdown table cell: no pipes or newlines may leak out of it."""
    return str(v).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _fence(text: str) -> str:
    """A code fence longer than any backtick run inside, so a diff cannot close it."""
    run = longest = 0
    for ch in text or "":
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def env() -> jinja2.Environment:
    e = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                           autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",),
                                                               default_for_string=False, default=False),
                           trim_blocks=True, lstrip_blocks=True,
                           keep_trailing_newline=True)
    e.filters.update(clip=_clip, cell=_cell, fence=_fence, fmt=view.fmt, kib=view.kib, rstrip=lambda t: (t or "").rstrip())
    return e


def pr_title(manifest: dict) -> str:
    v = view.build(manifest)
    state = {"deployed": "deployed", "failed": "failed"}.get(v["status"], v["status"])
    t = v["target"]
    return f"aipc: {v['model']} → {t.get('runtime', 'qnn').upper()} {t.get('backend', 'htp').upper()} " \
           f"{t.get('soc', '')} {t.get('precision', '')} ({state})".replace("  ", " ")


def pr_body(manifest: dict, *, images: dict[str, str] | None = None, links: dict[str, str] | None = None,
            limit: int = BODY_BUDGET) -> str:
    """The PR body. `images` maps plot names (seconds, layers) to URLs; `links` adds e.g. the HTML report."""
    tpl = env().get_template("pr_body.md.j2")
    v = view.build(manifest)
    ctx = {"v": v, "images": images or {}, "links": links or {}, "marker": MARKER, "why": view.STAGE_WHY}
    # Logs go first (they are long and rarely read), then diffs (the repairs' substance).
    levels = ((None, None), (6000, None), (2000, None), (400, None), (0, None), (0, 20000), (0, 6000),
              (0, 1500), (0, 300), (0, 0))
    for log_chars, diff_chars in levels:
        body = tpl.render(**ctx, log_chars=log_chars, diff_chars=diff_chars,
                          truncated=(log_chars, diff_chars) != levels[0])
        if len(body) <= limit:
            return body
    return body[: limit - 200] + "\n\n_This PR body was cut to fit GitHub's size limit; the full report is in the branch._\n"


def html_report(manifest: dict, folder: Path) -> Path:
    """Write `index.html` and its PNGs into `folder`; returns the HTML path."""
    folder = Path(folder)
    made = plots.render_all(manifest, folder)
    tpl = env().get_template("report.html.j2")
    v = view.build(manifest)
    html = tpl.render(v=v, images=[p.name for p in made], why=view.STAGE_WHY)
    out = folder / "index.html"
    out.write_text(html)
    return out
