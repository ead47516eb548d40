"""Git work for the bot branch, done with plumbing only.

The user runs `aipc deploy` in their own checkout, so nothing here may touch their working tree,
index or HEAD: blobs come from `git hash-object -w`, trees are built in a throw-away index
(`GIT_INDEX_FILE`), commits come from `commit-tree`, and the branch moves with `update-ref`
(compare-and-swap against the tip we read, so a concurrent writer is never overwritten).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bot.deployment_dir import repo_root

BOT_NAME = os.environ.get("AIPC_BOT_NAME", "aipc-bot")
BOT_EMAIL = os.environ.get("AIPC_BOT_EMAIL", "aipc-bot@users.noreply.github.com")
TRAILER_MODEL = "Aipc-Model"
TRAILER_BASE = "Aipc-Base"
ZERO = "0" * 40


class GitError(RuntimeError):
    pass


def bot_identity() -> tuple[str, str]:
    """Read at call time so a runner (and the tests) can set it per process."""
    return os.environ.get("AIPC_BOT_NAME", BOT_NAME), os.environ.get("AIPC_BOT_EMAIL", BOT_EMAIL)


@dataclass
class Repo:
    root: Path

    def git(self, *args: str, input: str | bytes | None = None, env: dict | None = None,
            check: bool = True) -> str:
        full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
        binary = isinstance(input, bytes)
        p = subprocess.run(["git", "-C", str(self.root), *args], input=input, capture_output=True,
                           env=full_env, text=not binary)
        out = p.stdout.decode() if binary else p.stdout
        err = p.stderr.decode() if binary else p.stderr
        if check and p.returncode != 0:
            raise GitError(f"git {' '.join(args[:3])} failed: {err.strip() or out.strip()}")
        return out.strip() if p.returncode == 0 else ""

    def rev(self, ref: str) -> str | None:
        out = self.git("rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False)
        return out or None

    @property
    def git_dir(self) -> Path:
        return Path(self.git("rev-parse", "--path-format=absolute", "--git-common-dir"))

    def head_ref(self) -> str | None:
        return self.git("symbolic-ref", "-q", "HEAD", check=False) or None


def find_repo(path: Path) -> Repo | None:
    root = repo_root(path)
    return Repo(root) if root else None


def lfs_available(repo: Repo) -> bool:
    return shutil.which("git-lfs") is not None and repo.git("lfs", "version", check=False) != ""


# ---------------------------------------------------------------- human commits on the bot branch

@dataclass
class CommitInfo:
    sha: str
    author: str
    committer_email: str
    subject: str
    model: str
    base: str


def log_first_parent(repo: Repo, tip: str, limit: int = 200) -> list[CommitInfo]:
    fmt = (f"%H%x1f%an <%ae>%x1f%ce%x1f%s%x1f%(trailers:key={TRAILER_MODEL},valueonly,separator=%x2c)"
           f"%x1f%(trailers:key={TRAILER_BASE},valueonly,separator=%x2c)%x1e")
    out = repo.git("log", "--first-parent", f"-n{limit}", f"--format={fmt}", tip)
    commits = []
    for rec in out.split("\x1e"):
        rec = rec.strip("\n")
        if not rec:
            continue
        sha, author, cmail, subject, model, base = (rec.split("\x1f") + [""] * 6)[:6]
        commits.append(CommitInfo(sha, author, cmail, subject, model.strip(), base.strip()))
    return commits


def foreign_commit(repo: Repo, tip: str, model: str) -> CommitInfo | None:
    """The newest commit on the bot branch the bot did not write, or None.

    A bot commit has both the bot's committer e-mail and an `Aipc-Model: <model>` trailer: a human
    who amends, rebases, merges or edits on the web changes the committer; one who commits by hand
    lacks the trailer. We walk first parents until the base commit the bot recorded it built on.
    """
    _, email = bot_identity()
    base = None
    for c in log_first_parent(repo, tip):
        if base and c.sha == base:
            return None
        if c.committer_email != email or c.model != model:
            return c
        base = c.base or base
    return None


# ---------------------------------------------------------------- building commits

@dataclass
class Entry:
    mode: str  # 100644 | 100755
    blob: str


@dataclass
class Step:
    """One commit: the paths it owns (prefixes) are replaced by `files`; everything else stays."""

    message: str
    owns: list[str]
    files: dict[str, Entry] = field(default_factory=dict)


def _mode(path: Path) -> str:
    return "100755" if os.access(path, os.X_OK) and path.suffix in (".py", ".sh") else "100644"


def hash_file(repo: Repo, path: Path) -> Entry:
    blob = repo.git("hash-object", "-w", "--no-filters", "--", str(path))
    return Entry(_mode(path), blob)


def hash_files(repo: Repo, paths: list[Path]) -> list[Entry]:
    """`hash_file` for many files in one git process (a deployment has dozens; one process each cost
    ~0.3 s of an unchanged re-run)."""
    if not paths:
        return []
    out = repo.git("hash-object", "-w", "--no-filters", "--stdin-paths",
                   input="".join(f"{p}\n" for p in paths)).split()
    if len(out) != len(paths):
        raise GitError(f"git hash-object --stdin-paths gave {len(out)} ids for {len(paths)} files")
    return [Entry(_mode(p), blob) for p, blob in zip(paths, out)]


def hash_bytes(repo: Repo, data: bytes) -> Entry:
    return Entry("100644", repo.git("hash-object", "-w", "--stdin", input=data))


def blob_bytes(repo: Repo, tip: str | None, path: str) -> bytes | None:
    if not tip:
        return None
    p = subprocess.run(["git", "-C", str(repo.root), "cat-file", "blob", f"{tip}:{path}"], capture_output=True)
    return p.stdout if p.returncode == 0 else None


def commit_steps(repo: Repo, parent: str, steps: list[Step], *, trailers: dict[str, str]) -> tuple[str, list[str]]:
    """Apply steps on top of `parent` in a private index; skip steps that change nothing.

    Returns the new tip and the messages of the commits made (empty when nothing changed).
    """
    if _unchanged(repo, parent, steps):
        return parent, []
    name, email = bot_identity()
    env_id = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
              "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
    made: list[str] = []
    with tempfile.TemporaryDirectory(prefix="aipc-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        repo.git("read-tree", parent, env=env)
        tip, tree = parent, repo.git("rev-parse", f"{parent}^{{tree}}")
        for step in steps:
            current = {}
            for owned in step.owns:
                listing = repo.git("ls-files", "-z", "--cached", "--", owned, env=env)
                current.update({p: None for p in listing.split("\0") if p})
            lines = [f"0 {ZERO}\t{p}" for p in current if p not in step.files]
            lines += [f"{e.mode} {e.blob}\t{p}" for p, e in sorted(step.files.items())]
            if lines:
                repo.git("update-index", "--index-info", input="\n".join(lines) + "\n", env=env)
            new_tree = repo.git("write-tree", env=env)
            if new_tree == tree:
                continue
            msg = step.message.rstrip() + "\n\n" + "".join(f"{k}: {v}\n" for k, v in trailers.items())
            tip = repo.git("commit-tree", new_tree, "-p", tip, "-F", "-", input=msg, env={**env, **env_id})
            tree = new_tree
            made.append(step.message.splitlines()[0])
    return tip, made


def _owned(path: str, owned: str) -> bool:
    return path == owned or path.startswith(owned.rstrip("/") + "/")


def _unchanged(repo: Repo, parent: str, steps: list[Step]) -> bool:
    """Every step would leave `parent`'s tree as it is: one `ls-tree` instead of three git calls per step
    (the unchanged re-run's case, which must stay cheap)."""
    owns = sorted({o for s in steps for o in s.owns})
    if not owns:
        return not any(s.files for s in steps)
    have = {}
    for rec in repo.git("ls-tree", "-r", "-z", parent, "--", *owns).split("\0"):
        if rec:
            meta, path = rec.split("\t", 1)
            mode, _kind, blob = meta.split()
            have[path] = (mode, blob)
    for s in steps:
        under = {p: v for p, v in have.items() if any(_owned(p, o) for o in s.owns)}
        if under != {p: (e.mode, e.blob) for p, e in s.files.items()}:
            return False
    return True


def move_branch(repo: Repo, branch: str, new: str, old: str | None) -> None:
    """Compare-and-swap the bot branch: fails if someone moved it since we read it."""
    repo.git("update-ref", "-m", "aipc: publish deployment", f"refs/heads/{branch}", new, old or ZERO)


# ---------------------------------------------------------------- remotes

def remote_url(repo: Repo, remote: str = "origin") -> str | None:
    return repo.git("remote", "get-url", remote, check=False) or None


def remote_tip(repo: Repo, branch: str, remote: str = "origin") -> str | None:
    """Fetch the bot branch from the remote into its remote-tracking ref (never the user's branches)."""
    out = repo.git("ls-remote", "--heads", remote, f"refs/heads/{branch}")
    if not out:
        return None
    sha = out.split()[0]
    repo.git("fetch", "--quiet", "--no-tags", remote, f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}")
    return sha


def push(repo: Repo, branch: str, new: str, expected: str | None, remote: str = "origin") -> None:
    """Force-with-lease: replaces only our own earlier tip, never something pushed meanwhile."""
    lease = f"--force-with-lease=refs/heads/{branch}:{expected or ''}"
    repo.git("push", "--quiet", "--no-verify", lease, remote, f"{new}:refs/heads/{branch}")


_SLUG = re.compile(r"(?:[:/])([^/:]+)/([^/]+?)(?:\.git)?/?$")


def slug_from_url(url: str) -> str | None:
    """`owner/name` from https://host/owner/name(.git) or git@host:owner/name(.git)."""
    m = _SLUG.search(url or "")
    return f"{m.group(1)}/{m.group(2)}" if m else None
