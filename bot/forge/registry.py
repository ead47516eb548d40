"""The forges by name: `local` (default) and `github` (`--pr`)."""

from __future__ import annotations

from bot.errors import BadInput
from bot.forge import git
from bot.forge.base import Forge
from bot.forge.github import GitHubForge
from bot.forge.local import LocalForge

REGISTRY: dict[str, type] = {"local": LocalForge, "github": GitHubForge}


def get_forge(name: str, repo: git.Repo, **options) -> Forge:
    try:
        return REGISTRY[name](repo, **options)
    except KeyError:
        raise BadInput(f"unknown forge {name!r}; known: {sorted(REGISTRY)}") from None
