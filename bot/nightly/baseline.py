"""The figures last accepted on main: the manifest the bot's merged PR committed.

`git show <ref>:deployments/<model>/manifest.json`, so a deployment edited in the working tree (or a
bot branch checked out) cannot move the bar. Outside git, or when the ref lacks the file, the working
tree's manifest is the baseline, and the report says so.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Baseline:
    manifest: dict | None
    source: str  # "main@1a2b3c4d", "working tree", or "none"


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)


def resolve_ref(root: Path, ref: str) -> str | None:
    """The commit `ref` names here; `origin/<ref>` too, since CI checkouts often lack the local branch."""
    for name in (ref, f"origin/{ref}"):
        p = _git(root, "rev-parse", "--verify", "-q", f"{name}^{{commit}}")
        if p.returncode == 0 and p.stdout.strip():
            return p.stdout.strip()
    return None


def load(root: Path, rel: str, ref: str | None, commit: str | None) -> Baseline:
    """The accepted manifest at `rel` (relative to the repository root)."""
    if commit:
        p = _git(root, "show", f"{commit}:./{rel}")  # ./ : relative to root, also when root is a subfolder
        if p.returncode == 0:
            try:
                return Baseline(json.loads(p.stdout), f"{ref}@{commit[:8]}")
            except json.JSONDecodeError:
                pass
        return Baseline(None, "none")  # not on main yet: a new deployment has nothing to regress from
    path = root / rel
    try:
        return Baseline(json.loads(path.read_text()), "working tree")
    except (OSError, json.JSONDecodeError):
        return Baseline(None, "none")
