"""Render the templates; keep bodies under the forge's limit by cutting logs first, then diffs.

A rendered text carries the key of what it was rendered from (`render_key`: the view of the manifest,
the templates, the report code, jinja2's and the bot's versions), so an unchanged re-run finds the same key
and neither imports jinja2 nor compiles a template: the HTML report has it in a comment, the PR body in
the cache file its caller names.
"""

from __future__ import annotations

import functools
import hashlib
from importlib.metadata import version
from pathlib import Path

from bot import plots
from bot import __version__
from bot.report import view
from bot.store import sha256_json

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


def env():
    return _environment(str(TEMPLATES))


@functools.lru_cache(maxsize=4)
def _environment(templates: str):
    """One environment per process (it keeps the templates it compiled), with jinja2's bytecode cache in
    the user's temporary folder, so a first deploy loads the compiled templates instead of compiling them
    (≈ 0.2 s for the PR body and the HTML report) once any earlier run on the machine compiled them."""
    # deferred: jinja2 (≈ 0.1 s to import) is needed only when a text is rendered, not on an unchanged re-run
    import jinja2

    # jinja2 keys a compiled template on its name and source, not on the environment's options below:
    # the files are named after this module's source too, so changing an option does not load stale code.
    import hashlib

    own = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    try:
        bytecode = jinja2.FileSystemBytecodeCache(pattern=f"aipc-{own}-%s.cache")
    except (OSError, RuntimeError):  # no private temporary folder to be had: compile every time
        bytecode = None
    e = jinja2.Environment(loader=jinja2.FileSystemLoader(templates),
                           autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",),
                                                               default_for_string=False, default=False),
                           trim_blocks=True, lstrip_blocks=True,
                           keep_trailing_newline=True, bytecode_cache=bytecode)
    e.filters.update(clip=_clip, cell=_cell, fence=_fence, fmt=view.fmt, kib=view.kib, rstrip=lambda t: (t or "").rstrip())
    return e


# What decides a rendered text besides its inputs: the code that turns a manifest into a view and a view
# into text (the bot's version alone does not move while it is developed).
REPORT_CODE = (Path(view.__file__), Path(__file__))


def render_key(kind: str, *inputs) -> str:
    """The key of one rendered text: its kind, its inputs (the view: only what the report shows of the
    manifest), every template, the report code and the versions of the bot and of jinja2."""


    h = hashlib.sha256()
    for p in sorted(TEMPLATES.iterdir()) + list(REPORT_CODE):
        if p.is_file():
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return sha256_json([kind, __version__, version("jinja2"), h.hexdigest(), *inputs])


def _cached_text(path: Path | None, key: str) -> str | None:
    """The text stored at `path` under `key` (its first line), or None."""
    if path is None:
        return None
    try:
        first, _, text = Path(path).read_text().partition("\n")
    except (OSError, UnicodeDecodeError):
        return None
    return text if first == key else None


def _store_text(path: Path | None, key: str, text: str) -> None:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(path).with_name(Path(path).name + ".tmp")
        tmp.write_text(f"{key}\n{text}")
        tmp.replace(path)


def pr_title(manifest: dict) -> str:
    v = view.build(manifest)
    state = {"deployed": "deployed", "failed": "failed"}.get(v["status"], v["status"])
    t = v["target"]
    return f"aipc: {v['model']} → {t.get('runtime', 'qnn').upper()} {t.get('backend', 'htp').upper()} " \
           f"{t.get('soc', '')} {t.get('precision', '')} ({state})".replace("  ", " ")


def pr_body(manifest: dict, *, images: dict[str, str] | None = None, links: dict[str, str] | None = None,
            limit: int = BODY_BUDGET, cache: Path | None = None) -> str:
    """The PR body. `images` maps plot names (seconds, layers) to URLs; `links` adds e.g. the HTML report.
    With `cache` (a file), a body rendered there from the same key is returned without rendering."""
    v = view.build(manifest)
    ctx = {"v": v, "images": images or {}, "links": links or {}, "marker": MARKER, "why": view.STAGE_WHY}
    key = render_key("pr_body", ctx, limit) if cache is not None else ""
    if (body := _cached_text(cache, key)) is not None:
        return body
    body = _render_body(ctx, limit)
    _store_text(cache, key, body)
    return body


def _render_body(ctx: dict, limit: int) -> str:
    tpl = env().get_template("pr_body.md.j2")
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
    v, images = view.build(manifest), [p.name for p in made]
    out = folder / "index.html"
    stamp = f"<!-- aipc-render-key {render_key('report.html', v, images, view.STAGE_WHY)} -->\n"
    try:
        if out.read_text().endswith(stamp):  # rendered from the same view, templates and code
            return out
    except (OSError, UnicodeDecodeError):
        pass
    html = env().get_template("report.html.j2").render(v=v, images=images, why=view.STAGE_WHY)
    out.write_text(html + stamp)
    return out
