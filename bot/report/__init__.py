"""Reports rendered from Jinja templates kept as files in `templates/`.

- `pr_body(manifest, images=...)`: the pull request body (Markdown), kept under GitHub's size limit.
- the nightly regressions report: `bot/nightly/report.py` (template `nightly_regressions.md.j2`).
- `html_report(manifest, folder)`: `index.html` plus the plots it shows, written into `folder`.
"""

from __future__ import annotations

from bot.report.render import GITHUB_BODY_LIMIT, html_report, pr_body, pr_title

__all__ = ["GITHUB_BODY_LIMIT", "html_report", "pr_body", "pr_title"]
