"""The local forge: no remote, no token. The default for `aipc deploy`.

The branch is `aipc/<model>` in the user's own repository; the "pull request" is a Markdown file
at `<git-common-dir>/aipc/prs/<model>.md` (title, labels, statuses, body). It lives inside `.git`
on purpose: the user's working tree stays exactly as they left it, and `git worktree` checkouts
share one file per model. Comments (human-commit notices) go to `<model>.comments.md` beside it.
"""

from __future__ import annotations

from pathlib import Path

from bot.forge.base import Draft, PrResult, body_hash, human_marker, stored_hash, with_hash
from bot.forge.git import Repo


class LocalForge:
    name = "local"

    def __init__(self, repo: Repo, **_):
        self.repo = repo
        self.folder = repo.git_dir / "aipc" / "prs"

    def connect(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def pr_path(self, model: str) -> Path:
        return self.folder / f"{model}.md"

    def open_or_update(self, draft: Draft) -> PrResult:
        self.connect()
        path = self.pr_path(draft.model)
        old = path.read_text() if path.exists() else None
        header = (f"# {draft.title}\n\n"
                  f"- branch: `{draft.branch}` at `{draft.head_sha[:12]}` → base `{draft.base or '(default)'}`\n"
                  f"- labels: {', '.join(f'`{l}`' for l in draft.labels)}\n"
                  + "".join(f"- status `{s.context}`: {s.state} — {s.description}\n" for s in draft.statuses)
                  + "\n---\n\n")
        text = with_hash(header + draft.body)
        if old is not None and stored_hash(old) == body_hash(header + draft.body):
            return PrResult(None, str(path))
        path.write_text(text)
        return PrResult(None, str(path), created=old is None, edited=old is not None)

    def report_human_commit(self, branch: str, sha: str, author: str, subject: str) -> None:
        self.connect()
        model = branch.split("/", 1)[-1]
        path = self.folder / f"{model}.comments.md"
        old = path.read_text() if path.exists() else ""
        if human_marker(sha) in old:
            return
        path.write_text(old + human_comment(branch, sha, author, subject) + "\n")


def human_comment(branch: str, sha: str, author: str, subject: str) -> str:
    return (f"{human_marker(sha)}\n"
            f"**aipc-bot stopped updating `{branch}`.** Commit `{sha[:12]}` ({subject!r}, by {author}) "
            f"was not written by the bot, so the bot will not push, force-push or edit this pull request "
            f"any more and your work stays as it is.\n\n"
            f"To hand the branch back to the bot, delete the branch (or reset it to the bot's last commit); "
            f"the next run recreates it.\n")
