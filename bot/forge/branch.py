"""What the bot's branch holds for one deployment, and how it is cut into commits.

The files under `deployments/<model>/` (never `.work/`; the deploy wrote the patches and the report
there, `bot.report.write_files`), where each file is stored (git, Git LFS, or a workflow artifact when too large), and the
commits, part by part (`bot.parts`): a graph deployed at the root one per stage, a part in a folder
of its own one for that folder; then one per repair of the part, and last the manifest and report.
Manifests keep the branch's blob when only run-time noise (start times, cache flags, the wall times
and decode speed re-measured over parts) changed, so an unchanged re-run makes no commit.
"""

from __future__ import annotations

import json
from pathlib import Path

from bot.forge import git
from bot.manifest import MANIFEST, Manifest, PartRow
from bot.parts import DeployedPart, parts
from bot.report import Texts
from bot.store import sha256_file

DEFAULT_MAX_GIT_BYTES = 5 * 1024 * 1024
SKIP = {".work", "__pycache__"}


def steps(repo: git.Repo, deployment_dir: Path, prefix: str, texts: Texts, storage: dict,
          parent: str) -> list[git.Step]:
    """The commits for this deployment, on top of `parent`: each part's, each of its repairs, then the
    manifest and report. Every message comes from `texts` (the report layer); the forge adds where
    large files went."""
    entries = _entries(repo, deployment_dir, prefix, storage, parent)
    out = []
    for part in parts(texts.typed):
        if part.dir is None:
            continue
        out += _stage_steps(texts, part, prefix, entries, storage) if part.at_root else \
            [_folder_step(texts, part, deployment_dir, prefix, entries, storage)]
        folder = f"{part.dir}/" if part.dir else ""
        out += [_repair_step(texts, r, folder, prefix, entries) for r in part.repairs]
    out.append(git.Step(texts.manifest_message(), owns=[f"{prefix}/"],
                        files={f"{prefix}/{r}": e for r, e in entries.items()}))
    return out


def _published_files(deployment_dir: Path) -> list[Path]:
    out = []
    for p in sorted(deployment_dir.rglob("*")):
        rel = p.relative_to(deployment_dir)
        if p.is_file() and not (set(rel.parts) & SKIP) and not p.name.endswith(".tmp"):
            out.append(p)
    return out


def storage_plan(deployment_dir: Path, manifest: dict, limit: int, lfs: bool) -> dict:
    files = {}
    for p in _published_files(deployment_dir):
        rel = str(p.relative_to(deployment_dir))
        if rel == MANIFEST:  # always in git; its own size would make it self-referential
            continue
        if p.name == MANIFEST:  # a part's own manifest, in its folder: small, always in git
            files[rel] = {"where": "git", "bytes": p.stat().st_size}
            continue
        size = p.stat().st_size
        if size <= limit or rel in (".gitignore", ".gitattributes"):
            files[rel] = {"where": "git", "bytes": size}
            continue
        meta = {"bytes": size, "sha256": sha256_file(p)}
        if lfs:
            meta.update(where="lfs", oid=meta["sha256"])
        else:
            stage = rel.split("/", 1)[0]
            meta.update(where="artifact", artifact=f"{manifest.get('model')}-{stage}")
        files[rel] = meta
    return {"max_git_bytes": limit, "lfs": lfs, "files": files}


def _entries(repo: git.Repo, deployment_dir: Path, prefix: str, storage: dict,
             parent: str) -> dict[str, git.Entry]:
    """Blob per published file (LFS pointers, artifacts left out); manifests keep the branch's blob
    when only run-time noise changed, and so do the timing-only files when the top manifest was kept."""
    entries: dict[str, git.Entry] = {}
    lfs_paths = []
    top_kept = False
    files = _published_files(deployment_dir)
    # the top manifest first: whether it was kept decides whether timing-only files may be kept too
    files.sort(key=lambda p: p != deployment_dir / MANIFEST)
    for p in files:
        rel = str(p.relative_to(deployment_dir))
        meta = storage["files"].get(rel, {"where": "git"})
        if meta["where"] == "artifact":
            continue
        if meta["where"] == "lfs":
            pointer = repo.git("lfs", "clean", "--", rel, input=p.read_bytes())
            entries[rel] = git.hash_bytes(repo, (pointer.strip() + "\n").encode())
            lfs_paths.append(rel)
        elif p.name == MANIFEST:
            entries[rel], kept = _manifest_entry(repo, p, parent, f"{prefix}/{rel}")
            top_kept = kept if rel == MANIFEST else top_kept
        elif rel in TIMING_FILES and top_kept:
            entries[rel], _ = _manifest_entry(repo, p, parent, f"{prefix}/{rel}", quiet=_quiet_timing)
        else:
            entries[rel] = p  # hashed below, all in one git call
    plain = [rel for rel, e in entries.items() if isinstance(e, Path)]
    for rel, entry in zip(plain, git.hash_files(repo, [entries[r] for r in plain])):
        entries[rel] = entry
    if lfs_paths:
        attrs = "".join(f"{r} filter=lfs diff=lfs merge=lfs -text\n" for r in lfs_paths)
        entries[".gitattributes"] = git.hash_bytes(repo, attrs.encode())
    return entries


def _kept_out(storage: dict, folder: str) -> str | None:
    """The line saying which files of `folder` stayed out of git (workflow artifacts), if any."""
    skipped = [r for r in storage["files"] if r.startswith(folder + "/") and storage["files"][r]["where"] == "artifact"]
    if not skipped:
        return None
    return f"Kept out of git (over {storage['max_git_bytes']} bytes; workflow artifact): {', '.join(skipped)}"


def _with_storage(message: str, storage: dict, folder: str) -> str:
    line = _kept_out(storage, folder)
    return f"{message}\n{line}" if line else message


def _folder_step(texts: Texts, part: DeployedPart, deployment_dir: Path, prefix: str, entries: dict,
                 storage: dict) -> git.Step:
    """One commit for a part in a folder of its own: its stage folders, its manifest and report (its
    patches go with its repair commits)."""
    d = part.dir
    mine = {r: e for r, e in entries.items() if r.startswith(d + "/") and not r.startswith(f"{d}/patches/")}
    tops = sorted({r[len(d) + 1:].split("/", 1)[0] + ("/" if "/" in r[len(d) + 1:] else "") for r in mine})
    own = Manifest.read(deployment_dir / d / MANIFEST)
    stages = (own.stages if own else None) or []
    owns = sorted({f"{prefix}/{d}/{t}" for t in tops} | {f"{prefix}/{d}/{s.stage}/" for s in stages})
    message = _with_storage(texts.part_message(part.row or PartRow(), stages), storage, d)
    return git.Step(message, owns=owns, files={f"{prefix}/{r}": e for r, e in mine.items()})


def _stage_steps(texts: Texts, part: DeployedPart, prefix: str, entries: dict, storage: dict) -> list[git.Step]:
    """One commit per stage folder of the graph deployed at the root."""
    out = []
    for s in part.stages:
        name = s.stage
        files = {f"{prefix}/{r}": e for r, e in entries.items() if r.startswith(name + "/")}
        out.append(git.Step(_with_storage(texts.stage_message(s), storage, name), owns=[f"{prefix}/{name}/"],
                            files=files))
    return out


VOLATILE = ("started", "seconds_total", "seconds_in_stages")
# Over parts, a run re-measures wall times and the decode loop's speed even when every stage is cached.
TIMING = {"started", "seconds_total", "seconds_in_stages", "cached", "seconds", "seconds_per_token", "session_load_seconds",
          "load_seconds", "encoder_seconds"}
TIMED_SECTIONS = ("parts", "e2e", "weight_sharing")  # the measurements made over parts, not by a stage
TIMING_FILES = {"runtime/tokens.json"}  # the decode loop's tokens plus its timings


def _quiet_timing(x):
    if isinstance(x, dict):
        return {k: _quiet_timing(v) for k, v in x.items() if k not in TIMING}
    if isinstance(x, list):
        return [_quiet_timing(v) for v in x]
    return x


def _quiet(m: dict) -> dict:
    """A manifest without its run-time noise: start and wall times, cache flags, the timings measured
    over parts, and the files that hold only those (timing-only files and the parts' own manifests,
    which are compared by this same rule)."""
    m = {k: v for k, v in m.items() if k not in VOLATILE}
    if isinstance(m.get("stages"), list):
        m["stages"] = [{k: v for k, v in s.items() if k != "cached"} if isinstance(s, dict) else s
                       for s in m["stages"]]
    for k in TIMED_SECTIONS:
        if k in m:
            m[k] = _quiet_timing(m[k])
    for key, section in (("artifacts", m.get("artifacts")), ("storage", m.get("storage"))):
        files = (section or {}).get("files") if key == "storage" else section
        if isinstance(files, dict):
            kept = {r: v for r, v in files.items() if r not in TIMING_FILES and Path(r).name != MANIFEST}
            m[key] = kept if key == "artifacts" else {**section, "files": kept}
    return m


def timed_over_parts(m: dict) -> bool:
    """The manifest holds timings measured over parts (wall times, the decode loop's speed), which a
    re-run measures again even when every stage is cached."""
    return any(m.get(k) for k in TIMED_SECTIONS)


def same_run(repo: git.Repo, parent: str, repo_path: str, manifest: dict) -> dict | None:
    """The branch's manifest when the new one differs from it only in run-time noise (`_quiet`)."""
    old = git.blob_bytes(repo, parent, repo_path)
    try:
        old_m = json.loads(old) if old is not None else None
    except ValueError:
        return None
    if not isinstance(old_m, dict):
        return None
    a, b = _quiet(dict(old_m, storage=None)), _quiet(dict(manifest, storage=None))
    return old_m if a == b else None


def _manifest_entry(repo: git.Repo, path: Path, parent: str, repo_path: str,
                    quiet=_quiet) -> tuple[git.Entry, bool]:
    """Keep the branch's manifest when only run-time noise (`_quiet`) changed; and whether it was kept."""
    new = path.read_bytes()
    old = git.blob_bytes(repo, parent, repo_path)
    if old is not None:
        try:
            if quiet(json.loads(old)) == quiet(json.loads(new)):
                return git.hash_bytes(repo, old), True
        except (ValueError, AttributeError):
            pass
    return git.hash_file(repo, path), False


def _repair_step(texts: Texts, r: dict, part: str, prefix: str, entries: dict) -> "git.Step":
    """One commit per repair attempt, its patch file included; `part` is "" or "<graph>/<variant>/"."""
    rel = f"{part}patches/{texts.patch_file(r)}"
    files = {f"{prefix}/{rel}": entries[rel]} if rel in entries else {}
    return git.Step(texts.repair_message(r, part), owns=[f"{prefix}/{rel}"], files=files)
