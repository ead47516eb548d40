"""The one interface every forge implements, and the records passed through it.

`publish` does the git work itself (the same for every forge); a forge only delivers the result:
open or update the one pull request for the bot branch, and speak up when a human took the branch.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Protocol

BODY_HASH = re.compile(r"<!-- aipc:body-sha256=([0-9a-f]{64}) -->")
MANAGED_LABELS = ("aipc", "aipc:repaired", "aipc:needs-human")


def body_hash(body: str) -> str:
    """Hash of what a reader sees, ignoring whitespace noise, so a no-op re-render is a no-op."""
    text = BODY_HASH.sub("", body)
    text = "\n".join(line.rstrip() for line in text.strip().splitlines())
    return hashlib.sha256(text.encode()).hexdigest()


def with_hash(body: str) -> str:
    return f"{body.rstrip()}\n\n<!-- aipc:body-sha256={body_hash(body)} -->\n"


def stored_hash(body: str | None) -> str | None:
    m = BODY_HASH.search(body or "")
    return m.group(1) if m else None


def human_marker(sha: str) -> str:
    return f"<!-- aipc:human-commit={sha} -->"


@dataclass
class Status:
    context: str  # aipc/<stage>
    state: str  # success | failure | error | pending
    description: str


@dataclass
class Draft:
    """Everything a forge needs to show one deployment as a pull request."""

    model: str
    branch: str
    base: str | None  # target branch; None = the forge's default branch
    head_sha: str
    title: str
    body: str
    labels: list[str]
    statuses: list[Status] = field(default_factory=list)


@dataclass
class PrResult:
    number: int | None
    url: str
    created: bool = False
    edited: bool = False
    labels_added: list[str] = field(default_factory=list)
    labels_removed: list[str] = field(default_factory=list)
    statuses_posted: int = 0


class Forge(Protocol):
    name: str

    def connect(self) -> None:
        """Check credentials and the repository before anything is pushed."""

    def open_or_update(self, draft: Draft) -> PrResult:
        """Find the PR by head branch; create it, or edit only what changed; labels; statuses."""

    def report_human_commit(self, branch: str, sha: str, author: str, subject: str) -> None:
        """Say once, where reviewers look, that the bot stopped because a human pushed to the branch."""
