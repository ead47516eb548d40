"""Source-level repairs: unified diffs confined to the model's folder, applied to a copy.

A patch is the one repair that edits user code, so it is checked before anything is written:
every path it names must stay inside the model folder (no absolute paths, no `..`, no symlinked
component), and it is applied with `git apply` (atomic: all hunks or none) to a working copy,
never to the folder itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path, PurePosixPath

from bot.errors import BadInput

_HEADER = re.compile(r"^(---|\+\+\+) (?P<path>[^\t\n]+?)(?:\t.*)?$")
_GIT = re.compile(r"^diff --git (?P<a>\S+) (?P<b>\S+)$")
_RENAME = re.compile(r"^(?:rename|copy) (?:from|to) (?P<path>.+)$")
_NULL = "/dev/null"


class PatchError(BadInput):
    """A patch that escapes the folder or does not apply; the message says which and why."""


def _paths(diff: str) -> list[str]:
    """Every path a diff names, as written (prefixes included)."""
    out = []
    for line in diff.splitlines():
        if (m := _HEADER.match(line)) is not None:
            p = m["path"].strip().strip('"')
            if p != _NULL:
                out.append(p)
        elif (m := _GIT.match(line)) is not None:
            out += [m["a"], m["b"]]
        elif (m := _RENAME.match(line)) is not None:
            out.append(m["path"].strip())
    return out


def strip_level(diff: str) -> int:
    """1 when the diff uses git's a/ b/ prefixes on every header (the usual case), else 0."""
    heads = [m["path"].strip() for line in diff.splitlines() if (m := _HEADER.match(line))]
    heads = [h for h in heads if h != _NULL]
    if heads and all(h.startswith(("a/", "b/")) for h in heads):
        return 1
    return 0


def check_patch(diff: str, model_dir: Path) -> list[str]:
    """The files a diff touches (relative to the model folder); raises if any would escape it."""
    if not diff.strip():
        raise PatchError("empty patch", where="patch")
    if "GIT binary patch" in diff:
        raise PatchError("binary patches are not accepted", where="patch")
    names = _paths(diff)
    if not any(_HEADER.match(line) for line in diff.splitlines()):
        raise PatchError("no '--- a/file' / '+++ b/file' headers: not a unified diff", where="patch")
    level = strip_level(diff)
    root = Path(model_dir).resolve()
    files: list[str] = []
    for raw in names:
        if raw.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", raw) or raw.startswith("\\"):
            raise PatchError(f"absolute path {raw!r} is outside the model folder", where="patch")
        parts = PurePosixPath(raw.replace("\\", "/")).parts
        rel_parts = parts[level:] if level and parts and parts[0] in ("a", "b") else parts
        if not rel_parts:
            raise PatchError(f"path {raw!r} names no file", where="patch")
        if ".." in rel_parts or any(p in ("", ".git") for p in rel_parts):
            raise PatchError(f"path {raw!r} leaves the model folder", where="patch")
        cur = root
        for part in rel_parts:
            cur = cur / part
            if cur.is_symlink():
                raise PatchError(f"path {raw!r} goes through a symlink ({cur.relative_to(root)})", where="patch")
        if not cur.resolve().is_relative_to(root):
            raise PatchError(f"path {raw!r} resolves outside the model folder", where="patch")
        rel = "/".join(rel_parts)
        if rel not in files:
            files.append(rel)
    return files


def working_copy(model_dir: Path, patches: list[str], dest: Path) -> Path:
    """Copy the model folder to `dest` (replacing it) and apply the patches in order there."""
    src, dest = Path(model_dir).resolve(), Path(dest).absolute()
    if dest.resolve() == src or src.is_relative_to(dest.resolve()):
        raise BadInput("the working copy must not be the model folder or contain it", where=str(dest))
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for i, diff in enumerate(patches):
        check_patch(diff, dest)
        apply_patch(diff, dest, label=f"patch {i + 1} of {len(patches)}")
    return dest


def apply_patch(diff: str, folder: Path, label: str = "patch") -> None:
    """Apply one diff inside `folder`, all hunks or none; PatchError carries the tool's reason.

    `git apply` first (atomic, exact). Diffs written by hand or by a model often lack trailing
    context, which both git and `patch` read as "anchored at end of file"; GNU patch with its
    default fuzz accepts those, so it is the fallback, dry-run first to stay all-or-nothing.
    """
    if not diff.endswith("\n"):
        diff += "\n"
    folder = Path(folder)
    level = strip_level(diff)
    with tempfile.NamedTemporaryFile("w", suffix=".diff", delete=False) as f:
        f.write(diff)
        pfile = f.name
    errors = []
    try:
        if shutil.which("git"):
            # without a ceiling git would find an enclosing repository and read paths from its root
            env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(folder.resolve().parent))
            proc = subprocess.run(["git", "apply", f"-p{level}", "--recount", "--whitespace=nowarn", pfile],
                                  cwd=folder, capture_output=True, text=True, env=env)
            if proc.returncode == 0:
                return
            errors.append((proc.stdout + proc.stderr).strip())
        if shutil.which("patch"):
            cmd = ["patch", f"-p{level}", "--batch", "--forward", "--no-backup-if-mismatch", "-r", "-", "-i", pfile]
            dry = subprocess.run(cmd + ["--dry-run"], cwd=folder, capture_output=True, text=True)
            if dry.returncode == 0:
                proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
                if proc.returncode == 0:
                    return
                dry = proc
            errors.append((dry.stdout + dry.stderr).strip())
        if not errors:  # pragma: no cover - both tools missing
            raise PatchError("neither git nor patch is installed", where=str(folder))
        raise PatchError(f"{label} does not apply: {errors[0][:1500]}", where=str(folder))
    finally:
        os.unlink(pfile)
