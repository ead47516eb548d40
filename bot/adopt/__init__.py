"""Adopting the bot in a model repository: `aipc init` (a definition, the caller's workflows)."""

from __future__ import annotations

import os
import re
import subprocess
from importlib import metadata
from pathlib import Path

from bot import __version__

BOT_CHECKOUT = Path(__file__).resolve().parents[2]
_GITHUB = re.compile(r"github\.com[:/]+([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(?:\.git)?/?$")


def bot_repository_of_install() -> str | None:
    """OWNER/NAME of the bot's GitHub repository as this install knows it, or None.

    An install from a clone of the bot (what the reusable workflow and the README do) knows its
    `origin`; an install from a built package knows its `Repository` project URL. Nothing else is
    guessed: a made-up default would pin the callers' workflows to somebody else's repository."""
    if (BOT_CHECKOUT / ".git").exists():
        try:
            url = subprocess.run(["git", "-C", str(BOT_CHECKOUT), "remote", "get-url", "origin"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            url = ""
        if m := _GITHUB.search(url):
            return m.group(1)
    try:
        urls = metadata.metadata("aipc-bot").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        urls = []
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() in ("repository", "source") and (m := _GITHUB.search(url.strip())):
            return m.group(1)
    return None


def pinned(bot_repository: str | None = None, tag: str | None = None) -> tuple[str | None, str]:
    """(OWNER/NAME or None when nothing says it, tag) the adopting repository pins: this version's
    tag unless told otherwise. Order: --bot-repository, AIPC_BOT_REPOSITORY, the install's own."""
    repo = bot_repository or os.environ.get("AIPC_BOT_REPOSITORY") or bot_repository_of_install()
    return repo, tag or f"v{__version__}"
