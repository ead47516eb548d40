"""Reports rendered from Jinja templates kept as files in `templates/`.

- `pr_body(manifest, images=...)`: the pull request body (Markdown), kept under GitHub's size limit.
- the nightly regressions report: `bot/nightly/report.py` (template `nightly_regressions.md.j2`).
- `html_report(manifest, folder)`: `index.html` plus the plots it shows, written into `folder`.
- `write_files(deployment_dir, manifest)`: everything a deploy writes beside its manifest (patches,
  report/, each part's report), on every deploy; `Texts(manifest)`: the texts a forge delivers.
"""

from __future__ import annotations

from bot.report.delivery import StatusText, Texts, write_files
from bot.report.render import GITHUB_BODY_LIMIT, html_report, pr_body, pr_title

__all__ = ["GITHUB_BODY_LIMIT", "StatusText", "Texts", "html_report", "pr_body", "pr_title", "write_files"]
