"""Adopting the bot in a model repository: `aipc init` (a definition, the caller's workflows)."""

from __future__ import annotations

import os

from bot import __version__

#: The bot's GitHub repository, as the callers' workflows and the schema header name it. Set
#: AIPC_BOT_REPOSITORY (or pass --bot-repository) where the bot lives under another name.
DEFAULT_BOT_REPOSITORY = "acme/aipc-bot"


def pinned(bot_repository: str | None = None, tag: str | None = None) -> tuple[str, str]:
    """(OWNER/NAME, tag) the adopting repository pins: this version's tag unless told otherwise."""
    repo = bot_repository or os.environ.get("AIPC_BOT_REPOSITORY") or DEFAULT_BOT_REPOSITORY
    return repo, tag or f"v{__version__}"
