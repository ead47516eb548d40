"""Where a model's deployment folder lives (and the git root it is found from): `<git root>/deployments/<name>` unless told otherwise."""

from __future__ import annotations

import subprocess
from pathlib import Path


def repo_root(path: Path) -> Path | None:
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, check=True).stdout.strip()
        return Path(out)
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None


def resolve_out_dir(model_dir: Path, name: str, out_dir: Path | None) -> Path:
    if out_dir is not None:
        return Path(out_dir).resolve()
    root = repo_root(model_dir) or Path.cwd()
    return root / "deployments" / name
