"""Paths a definition names, kept inside the model folder.

A definition is contributed code and data: `data/../../etc/passwd`, an absolute path or a symlink
out of the folder must not let a stage read (or a package copy) a file the model does not own.
One helper so every field that names a file checks it the same way.
"""

from __future__ import annotations

import glob
from pathlib import Path

from bot.errors import BadInput


def inside(folder: Path, rel: str, where: str) -> Path:
    """`folder / rel`, resolved (symlinks followed), or `BadInput` naming `where` if it leaves `folder`."""
    root = Path(folder).resolve()
    if Path(rel).is_absolute():
        raise BadInput(f"{rel!r} is an absolute path; name files relative to the model folder", where=where)
    path = (root / rel).resolve()
    if not path.is_relative_to(root):
        raise BadInput(f"{rel!r} points outside the model folder", where=where)
    return path


def glob_inside(folder: Path, pattern: str, where: str) -> list[Path]:
    """Files matching `pattern` (relative to `folder`, `**` allowed), sorted; each checked by `inside`."""
    root = Path(folder).resolve()
    inside(root, pattern.split("*")[0] or ".", where)  # the fixed prefix must not climb out either
    found = sorted(glob.glob(pattern, root_dir=root, recursive=True))
    return [inside(root, f, where) for f in found if (root / f).is_file()]


def relative(folder: Path, path: Path) -> str:
    """How a report names a file: relative to the model folder, with forward slashes."""
    return Path(path).resolve().relative_to(Path(folder).resolve()).as_posix()
