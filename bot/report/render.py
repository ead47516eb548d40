"""Render the templates; keep bodies under the forge's limit by cutting logs first, then diffs."""

from __future__ import annotations

from pathlib import Path

import jinja2

from bot.report import plots, view

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


def nightly(entries: list[dict], *, title: str = "aipc nightly re-validation") -> str:
    """`entries`: [{"manifest": dict, "passed": bool, "lines": [str], "skipped": reason?}] → one Markdown summary.

    A composite deployment is one row with its parts summarised; `skipped` says why a deployment
    was not re-validated (shown as such, never as a pass)."""
    rows = []
    for e in entries:
        m = e.get("manifest") or {}
        v = view.build(m)
        if v["composite"]:
            cos = [o.get("cosine") for p in m.get("parts") or [] for o in ((p.get("validate") or {}).get("outputs") or {}).values()]
            cos += [x.get("cosine") for c in m.get("e2e") or [] for x in (c.get("metrics") or {}).values()]
            worst = min((c for c in cos if c is not None), default=None)
            status = f"{v['status']} ({v['parts_passed']}/{len(v['parts'])} parts" + (
                f", {v['e2e_passed']}/{len(v['e2e'])} end-to-end" if v["e2e"] else "") + ")"
            parts = "; ".join(f"{p['dir']}: {p['status']}" for p in v["parts"])
            latency = "—"
        else:
            worst = min((o.get("cosine") for o in v["outputs"].values() if o.get("cosine") is not None), default=None)
            status, parts, latency = v["status"], "", view.fmt(v["latency_ms"], 4)
        rows.append({"model": v["model"] if m else e.get("model", "?"), "status": status,
                     "passed": bool(e.get("passed")) and not e.get("skipped"), "skipped": e.get("skipped") or "",
                     "cosine": view.fmt(worst), "latency": latency, "parts": parts,
                     "target": f"{v['target'].get('soc', '')} {v['target'].get('precision', '')}".strip(),
                     "repaired": v["repaired"], "lines": e.get("lines") or [], "error": e.get("error", "")})
    tpl = env().get_template("nightly.md.j2")
    skipped = sum(bool(r["skipped"]) for r in rows)
    body = tpl.render(title=title, rows=rows, passed=sum(r["passed"] for r in rows), total=len(rows), skipped=skipped)
    return body if len(body) <= BODY_BUDGET else _clip(body, BODY_BUDGET)


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
