"""Which models a push or a pull request changed: the deploy workflow's matrix.

A model is a folder `models/<name>/` with an `aipc.yaml`. A change anywhere under the folder (the
definition, the code, the weights, a patch) deploys it again; a folder whose definition is gone at
the head is not deployed. Only git plumbing and the standard library, so the workflow can run it on
a GitHub-hosted runner without installing the toolchain.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from bot.errors import BadInput

MODELS = "models"
DEFINITION = "aipc.yaml"
NO_COMMIT = re.compile(r"0*")  # what GitHub sends as `before` for a new branch
MATRIX_LIMIT = 256  # GitHub's jobs per matrix (bot.nightly.shards.MATRIX_LIMIT); max-parallel is the workflow's


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if check and p.returncode:
        raise BadInput(f"git {' '.join(args[:2])} failed: {p.stderr.strip()}", where=str(root),
                       hint="the workflow's checkout needs the history of both commits (fetch-depth: 0)")
    return p


def models_in(paths: list[str]) -> list[str]:
    """Model names from changed paths (`models/<name>/...`), in order, once each."""
    names = []
    for p in paths:
        parts = p.split("/")
        if len(parts) >= 3 and parts[0] == MODELS and parts[1] not in names:
            names.append(parts[1])
    return names


def _with_definition(root: Path, rev: str) -> set[str]:
    """Every model that has a definition at `rev`, in one git call (not one per model: a push may touch
    a hundred)."""
    listed = _git(root, "ls-tree", "--name-only", "-r", rev, "--", MODELS).stdout.splitlines()
    return {p.split("/")[1] for p in listed if p.count("/") == 2 and p.endswith("/" + DEFINITION)}


def changed_models(root: Path, base: str | None, head: str) -> list[str]:
    """Models changed between `base` and `head` (three-dot: what `head` added since they diverged).
    No usable `base` (a new branch, a first push) means every model at `head`."""
    root = Path(root)
    if _git(root, "rev-parse", "--verify", "-q", f"{head}^{{commit}}", check=False).returncode:
        raise BadInput(f"head commit {head!r} is not in this checkout", where=str(root),
                       hint="check out with fetch-depth: 0")
    if not base or NO_COMMIT.fullmatch(base) or \
            _git(root, "rev-parse", "--verify", "-q", f"{base}^{{commit}}", check=False).returncode:
        paths = _git(root, "ls-tree", "-r", "--name-only", head, "--", MODELS).stdout.splitlines()
    else:
        paths = _git(root, "diff", "--name-only", f"{base}...{head}", "--", MODELS).stdout.splitlines()
    defined = _with_definition(root, head)
    names = sorted(n for n in models_in(paths) if n in defined)
    if len(names) > MATRIX_LIMIT:
        raise BadInput(f"{len(names)} models changed; one workflow matrix holds at most {MATRIX_LIMIT} jobs",
                       where=str(root), hint="push the change in parts, or dispatch the deploy workflow per model")
    return names


def one_model(root: Path, name: str) -> list[str]:
    """`workflow_dispatch` names one model: it must exist in the checkout."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or not (Path(root) / MODELS / name / DEFINITION).is_file():
        known = sorted(p.parent.name for p in (Path(root) / MODELS).glob(f"*/{DEFINITION}"))
        raise BadInput(f"no model {name!r}: models/{name}/{DEFINITION} does not exist", where=str(root),
                       hint=f"known: {', '.join(known) or 'none'}")
    return [name]
