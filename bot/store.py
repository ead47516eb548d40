"""Files the bot writes: content hashes, atomic JSON, and the stage store.

Every finished stage lives in `<deployment>/.work/<stage>-<key>/` and is written there under a
`.partial` name first, renamed only when complete; a run killed mid-stage leaves a `.partial`
folder nobody reads, so nothing half-written is ever mistaken for a good artifact. The folders a
person sees (`<deployment>/<stage>/`) are hard-linked views of the chosen store entries.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

WORK = ".work"


def sha256_file(path: Path, bufsize: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def tree_digest(folder: Path, skip: tuple[str, ...] = ("__pycache__", ".work", "aipc.yaml")) -> str:
    """Hash of every file's relative path and content below `folder`."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not any(part in skip for part in p.relative_to(folder).parts):
            h.update(str(p.relative_to(folder)).encode())
            h.update(sha256_file(p).encode())
    return h.hexdigest()


def write_json(path: Path, obj: Any) -> None:
    """Write then rename, so readers see the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def store_dir(out_dir: Path, stage: str, key: str) -> Path:
    return out_dir / WORK / f"{stage}-{key[:16]}"


def begin(out_dir: Path, stage: str, key: str) -> Path:
    work = store_dir(out_dir, stage, key).with_suffix(".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


def commit(work: Path) -> Path:
    final = work.with_suffix("")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(work, final)
    return final


def link_view(src: Path, dest: Path) -> None:
    """Make `dest` a view of `src` (hard links where the filesystem allows): a stored stage result
    shown at its place in the deployment folder. (Not the forge's publish, which delivers a deployment.)
    A `dest` that already is that view (the same files, hard-linked: a cached re-run) is left alone."""
    if _is_view_of(src, dest):
        return
    tmp = dest.with_name(dest.name + ".publishing")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, copy_function=_link_or_copy)
    old = dest.with_name(dest.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def _is_view_of(src: Path, dest: Path) -> bool:
    """Whether `dest` holds exactly `src`'s files, each a hard link to it (same inode), nothing else."""
    if not dest.is_dir() or dest.is_symlink():
        return False

    def files(root: Path) -> dict[str, tuple[int, int] | None] | None:
        out: dict[str, tuple[int, int] | None] = {}
        for p in root.rglob("*"):
            if p.is_symlink():
                return None
            st = p.lstat()
            out[str(p.relative_to(root))] = None if p.is_dir() else (st.st_dev, st.st_ino)
        return out

    try:
        mine = files(dest)
        return mine is not None and mine == files(src)
    except OSError:
        return False


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
