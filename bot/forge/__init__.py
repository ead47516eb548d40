"""Forges: where the bot's branch and pull request go (GitHub via PyGithub, or a local forge).

`publish` is the one entry point `bot.deploy` calls after a run. The git work is the same for every
forge and never touches the user's working tree, index or HEAD (see `bot.forge.git`):

- branch `aipc/<model>` starts from the commit being deployed (HEAD) and holds that commit's tree
  plus `deployments/<model>/` (stage folders, manifest.json, patches/, report/; never `.work/`);
- one commit per stage and per repair, then one for the manifest and report; steps that change
  nothing make no commit, so an unchanged re-run leaves the branch (and the PR) alone;
- files above `max_git_bytes` go to Git LFS when `git lfs` is installed, else they stay out of git
  for the workflow to upload as artifacts; the manifest's `storage` section says which;
- a commit on the branch the bot did not write (see `git.foreign_commit`) stops the bot for that
  branch, and the forge says so once (a PR comment on GitHub, a comments file locally).

Forges: `local` (default; PR body in `<git-dir>/aipc/prs/<model>.md`) and `github` (`--pr`).
Set `AIPC_FORGE=off` to skip publishing entirely (e.g. in tests that deploy inside a checkout).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bot import __version__
from bot.errors import BadInput
from bot.forge import git
from bot.forge.base import Draft, Forge, PrResult, Status
from bot.forge.github import GitHubForge
from bot.forge.local import LocalForge
from bot.report.view import is_composite

REGISTRY: dict[str, type] = {"local": LocalForge, "github": GitHubForge}
DEPLOYMENTS = "deployments"
DEFAULT_MAX_GIT_BYTES = 5 * 1024 * 1024
SKIP = {".work", "__pycache__"}
MANIFEST_NAME = "manifest.json"

__all__ = ["REGISTRY", "Forge", "PublishResult", "publish", "get_forge"]


def get_forge(name: str, repo: git.Repo, **options) -> Forge:
    try:
        return REGISTRY[name](repo, **options)
    except KeyError:
        raise BadInput(f"unknown forge {name!r}; known: {sorted(REGISTRY)}") from None


@dataclass
class PublishResult:
    branch: str
    sha: str | None = None
    commits: list[str] = field(default_factory=list)
    pushed: bool = False
    pr: PrResult | None = None
    stopped_by: str | None = None  # sha of a human commit that stopped the bot
    storage: dict = field(default_factory=dict)


def publish(*, deployment_dir: Path, model_dir: Path, manifest: dict, push: bool, pr: bool,
            say: Callable[[str], None] = lambda m: None, forge: str | None = None,
            forge_options: dict | None = None, base: str = "HEAD", remote: str = "origin",
            max_git_bytes: int | None = None, branch: str | None = None,
            pr_base: str | None = None) -> PublishResult | None:
    """Commit the deployment to `aipc/<model>` (or `branch`) and open or update its pull request
    (into `pr_base`, else the branch the deployed commit is on; see `bot.forge.contributor`)."""
    if os.environ.get("AIPC_FORGE", "").lower() in ("off", "0", "none"):
        return None
    repo = git.find_repo(Path(model_dir))
    if repo is None:
        say(f"not publishing: {model_dir} is not inside a git repository (no branch, no pull request)")
        return None
    model = manifest.get("model") or Path(deployment_dir).name
    branch = branch or f"aipc/{model}"
    head = repo.rev(base)
    if head is None:
        say(f"not publishing: {repo.root} has no commit yet to branch {branch} from")
        return None
    if repo.head_ref() == f"refs/heads/{branch}":
        say(f"not publishing: {branch} is checked out here; the bot never writes the branch you are on")
        return None
    push = push or pr
    limit = max_git_bytes if max_git_bytes is not None else int(
        os.environ.get("AIPC_MAX_GIT_BYTES", DEFAULT_MAX_GIT_BYTES))
    fg = get_forge(forge or ("github" if pr else "local"), repo, **(forge_options or {}))
    result = PublishResult(branch)

    # 1. Whose branch is it? Read both tips; any commit we did not write hands it to the human.
    local_tip = repo.rev(f"refs/heads/{branch}")
    try:
        remote_tip = git.remote_tip(repo, branch, remote) if push else None
    except git.GitError as e:
        raise BadInput(f"cannot read {branch} from remote {remote!r}: {e}", where=str(repo.root)) from None
    for tip in dict.fromkeys(t for t in (remote_tip, local_tip) if t):
        human = git.foreign_commit(repo, tip, model)
        if human:
            result.stopped_by, result.sha = human.sha, tip
            say(f"not updating {branch}: commit {human.sha[:12]} ({human.subject!r} by {human.author}) "
                f"was not written by the bot; it stays as it is")
            if pr:
                fg.connect()
            fg.report_human_commit(branch, human.sha, human.author, human.subject)
            return result

    # 2. Files derived from the manifest: repair patches, storage decisions, the HTML report.
    deployment_dir = Path(deployment_dir)
    prefix = f"{DEPLOYMENTS}/{model}"
    start_tip = remote_tip or local_tip
    parent = head
    if start_tip:
        last = git.log_first_parent(repo, start_tip, limit=1)
        if last and last[0].base == head:
            parent = start_tip
    composite = is_composite(manifest)
    if composite:
        # A re-run re-measures the decode loop and the wall times; when nothing but those changed,
        # the report is rendered from the branch's manifest so the branch and the PR stay as they are.
        manifest = _same_run(repo, parent, f"{prefix}/{MANIFEST_NAME}", manifest) or manifest
    _write_patches(deployment_dir, manifest)
    if not (deployment_dir / ".gitignore").exists():
        (deployment_dir / ".gitignore").write_text(".work/\n")
    from bot.report import html_report

    html_report(manifest, deployment_dir / "report")
    if composite:
        _part_reports(deployment_dir, manifest)
    lfs = git.lfs_available(repo)
    storage = _storage(deployment_dir, manifest, limit, lfs)
    manifest = {**manifest, "storage": storage}
    result.storage = storage
    from bot.pipeline.manifest import update_section

    if (deployment_dir / "manifest.json").exists():
        update_section(deployment_dir, "storage", storage)

    # 3. Commits on top of our own earlier tip when it was built on this same HEAD, else fresh.
    steps = (_composite_steps if composite else _steps)(repo, deployment_dir, prefix, manifest, storage, parent)
    trailers = {git.TRAILER_MODEL: model, git.TRAILER_BASE: head, "Aipc-Bot": __version__}
    new, made = git.commit_steps(repo, parent, steps, trailers=trailers)
    result.sha, result.commits = new, made
    if new != local_tip:
        git.move_branch(repo, branch, new, local_tip)
    say(f"{branch}: {len(made)} new commit(s), tip {new[:12]}" if made else f"{branch}: nothing changed ({new[:12]})")

    # 4. Deliver: connect before pushing, so a bad token fails before the remote changes.
    if pr:
        fg.connect()
    if push and remote_tip != new:
        if lfs and any(v.get("where") == "lfs" for v in storage["files"].values()):
            oids = [v["oid"] for v in storage["files"].values() if v.get("where") == "lfs"]
            repo.git("lfs", "push", "--object-id", remote, *oids)
        try:
            git.push(repo, branch, new, remote_tip, remote)
        except git.GitError as e:
            raise BadInput(f"push of {branch} to {remote!r} failed: {e}", where=str(repo.root),
                           hint=f"the commits are safe on the local branch {branch} ({new[:12]})") from None
        result.pushed = True
        say(f"pushed {branch} to {remote}")
    images = _image_links(fg, new, prefix, deployment_dir)
    from bot.report import pr_body, pr_title
    from bot.report.view import labels

    draft = Draft(model=model, branch=branch, base=pr_base or (_base_branch(repo) if pr else repo.head_ref()),
                  head_sha=new, title=pr_title(manifest), body=pr_body(manifest, images=images["images"],
                                                                       links=images["links"]),
                  labels=labels(manifest), statuses=_statuses(manifest))
    result.pr = fg.open_or_update(draft)
    what = "opened" if result.pr.created else ("updated" if result.pr.edited else "unchanged")
    say(f"pull request {what}: {result.pr.url}")
    return result


# ---------------------------------------------------------------------- helpers

def _base_branch(repo: git.Repo) -> str | None:
    """The branch the pushed commit is on: Actions says it, else HEAD's branch, else the default."""
    if os.environ.get("GITHUB_REF_NAME") and os.environ.get("GITHUB_REF_TYPE", "branch") == "branch" \
            and not os.environ.get("GITHUB_HEAD_REF"):
        return os.environ["GITHUB_REF_NAME"]
    ref = repo.head_ref()
    return ref.removeprefix("refs/heads/") if ref else None


def _published_files(deployment_dir: Path) -> list[Path]:
    out = []
    for p in sorted(deployment_dir.rglob("*")):
        rel = p.relative_to(deployment_dir)
        if p.is_file() and not (set(rel.parts) & SKIP) and not p.name.endswith(".tmp"):
            out.append(p)
    return out


def _write_patches(deployment_dir: Path, manifest: dict) -> None:
    from bot.report.view import patch_name

    if is_composite(manifest):  # each part's repairs beside that part: <graph>/<variant>/patches/
        for p in manifest.get("parts") or []:
            if p.get("dir"):
                _write_patches(deployment_dir / p["dir"], {"repairs": p.get("repair_records") or []})
        return
    for r in manifest.get("repairs") or []:
        if r.get("diff"):
            d = deployment_dir / "patches"
            d.mkdir(exist_ok=True)
            p = d / patch_name(r)
            text = r["diff"] if r["diff"].endswith("\n") else r["diff"] + "\n"
            if not p.exists() or p.read_text() != text:
                p.write_text(text)


def _storage(deployment_dir: Path, manifest: dict, limit: int, lfs: bool) -> dict:
    from bot.store import sha256_file

    files = {}
    for p in _published_files(deployment_dir):
        rel = str(p.relative_to(deployment_dir))
        if rel == "manifest.json":  # always in git; its own size would make it self-referential
            continue
        if p.name == MANIFEST_NAME:  # a composite part's manifest: small, always in git
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


def _entries(repo: git.Repo, deployment_dir: Path, prefix: str, storage: dict, parent: str,
             composite: bool = False) -> dict[str, git.Entry]:
    """Blob per published file (LFS pointers, artifacts left out); manifests keep the branch's blob
    when only run-time noise changed."""
    entries: dict[str, git.Entry] = {}
    lfs_paths = []
    top_kept = False
    files = _published_files(deployment_dir)
    # the top manifest first: whether it was kept decides whether timing-only files may be kept too
    files.sort(key=lambda p: p != deployment_dir / MANIFEST_NAME)
    for p in files:
        rel = str(p.relative_to(deployment_dir))
        meta = storage["files"].get(rel, {"where": "git"})
        if meta["where"] == "artifact":
            continue
        if meta["where"] == "lfs":
            pointer = repo.git("lfs", "clean", "--", rel, input=p.read_bytes())
            entries[rel] = git.hash_bytes(repo, (pointer.strip() + "\n").encode())
            lfs_paths.append(rel)
        elif rel == MANIFEST_NAME and composite:
            entries[rel] = _manifest_entry(repo, p, parent, f"{prefix}/{rel}", quiet=_quiet_top)
            top_kept = entries[rel].blob == (_old_blob(repo, parent, f"{prefix}/{rel}") or "")
        elif p.name == MANIFEST_NAME:
            entries[rel] = _manifest_entry(repo, p, parent, f"{prefix}/{rel}")
        elif composite and rel in TIMING_FILES and top_kept:
            entries[rel] = _manifest_entry(repo, p, parent, f"{prefix}/{rel}", quiet=_quiet_timing)
        else:
            entries[rel] = git.hash_file(repo, p)
    if lfs_paths:
        attrs = "".join(f"{r} filter=lfs diff=lfs merge=lfs -text\n" for r in lfs_paths)
        entries[".gitattributes"] = git.hash_bytes(repo, attrs.encode())
    return entries


def _composite_steps(repo: git.Repo, deployment_dir: Path, prefix: str, manifest: dict, storage: dict,
                     parent: str) -> list[git.Step]:
    """A composite deployment: one commit per part (its stage folders), one per repair of a part
    (its patch), then the top manifest, the end-to-end runtime and the report."""
    import json

    from bot.report.view import fmt, part_figure

    entries = _entries(repo, deployment_dir, prefix, storage, parent, composite=True)
    model = manifest.get("model")
    steps = []
    for part in manifest.get("parts") or []:
        d = part.get("dir")
        if not d:
            continue
        mine = {r: e for r, e in entries.items() if r.startswith(d + "/") and not r.startswith(f"{d}/patches/")}
        tops = sorted({r[len(d) + 1:].split("/", 1)[0] + ("/" if "/" in r[len(d) + 1:] else "") for r in mine})
        try:
            stages = json.loads((deployment_dir / d / MANIFEST_NAME).read_text()).get("stages", [])
        except (OSError, ValueError):
            stages = []
        owns = sorted({f"{prefix}/{d}/{t}" for t in tops} | {f"{prefix}/{d}/{s.get('stage')}/" for s in stages})
        verdict = "deployed" if part.get("passed") else "FAILED"
        inputs = ", ".join(f"{k} {fmt(v)}" for k, v in (part.get("inputs") or {}).items())
        lines = [f"aipc({model}): part {d} {verdict} in {float(part.get('seconds') or 0):.2f}s", ""]
        if fig := part_figure(part):
            lines += [fig, ""]
        lines.append(f"Static shapes: {inputs}")
        for s in stages:
            lines.append(f"- {'ok' if s.get('passed') else 'FAIL'}: {s.get('stage')} in {float(s.get('seconds') or 0):.2f}s")
        for b, meta in (part.get("binaries") or {}).items():
            lines.append(f"Context binary: {b} ({meta.get('bytes')} bytes)")
        skipped = [r for r in storage["files"] if r.startswith(d + "/") and storage["files"][r]["where"] == "artifact"]
        if skipped:
            lines.append(f"Kept out of git (over {storage['max_git_bytes']} bytes; workflow artifact): {', '.join(skipped)}")
        steps.append(git.Step("\n".join(lines), owns=owns, files={f"{prefix}/{r}": e for r, e in mine.items()}))
        steps += [_repair_step(model, r, f"{d}/", prefix, entries) for r in part.get("repair_records") or []]
    lines = [f"aipc({model}): manifest, end-to-end checks and report, {manifest.get('status')}", ""]
    for e in manifest.get("e2e") or []:
        for c in e.get("checks") or []:
            thr = f" (threshold {fmt(c.get('threshold'))})" if c.get("threshold") is not None else ""
            lines.append(f"- {'ok' if c.get('passed') else 'FAIL'}: {c.get('name')} = {fmt(c.get('value'))}{thr}")
    for g, w in (manifest.get("weight_sharing") or {}).items():
        lines.append(f"- weight sharing ({g}): {w.get('option')}, usable: {fmt(w.get('usable'))}; "
                     f"deployed as {w.get('deployed')}")
    lines += ["", "The top manifest lists the parts (status, binaries, metrics, repairs) and the end-to-end "
                  "checks; runtime/ holds the packaged decode loop when there is one; report/ the HTML report."]
    steps.append(git.Step("\n".join(lines), owns=[f"{prefix}/"],
                          files={f"{prefix}/{r}": e for r, e in entries.items()}))
    return steps


def _part_reports(deployment_dir: Path, manifest: dict) -> None:
    """Each part's own single-graph HTML report, beside its stage folders."""
    import json

    from bot.report import html_report

    for p in manifest.get("parts") or []:
        f = deployment_dir / (p.get("dir") or "") / MANIFEST_NAME
        if p.get("dir") and f.is_file():
            try:
                html_report(json.loads(f.read_text()), f.parent / "report")
            except ValueError:
                continue


def _steps(repo: git.Repo, deployment_dir: Path, prefix: str, manifest: dict, storage: dict,
           parent: str) -> list[git.Step]:
    from bot.report.view import STAGE_WHY, fmt, stage_figure

    entries = _entries(repo, deployment_dir, prefix, storage, parent)
    model = manifest.get("model")

    def under(folder: str) -> dict[str, git.Entry]:
        return {f"{prefix}/{r}": e for r, e in entries.items() if r.startswith(folder + "/")}

    steps = []
    for s in manifest.get("stages", []):
        name = s.get("stage")
        verdict = "passed" if s.get("passed") else "FAILED"
        lines = [f"aipc({model}): {name} {verdict} in {float(s.get('seconds') or 0):.2f}s"
                 + (" (cached)" if s.get("cached") else ""), ""]
        if fig := stage_figure(s):
            lines += [fig, ""]
        for c in s.get("checks", []):
            thr = f" (threshold {fmt(c.get('threshold'))})" if c.get("threshold") is not None else ""
            lines.append(f"- {'ok' if c.get('passed') else 'FAIL'}: {c.get('name')}"
                         + (f" = {fmt(c.get('value'))}" if c.get("value") is not None else "") + thr)
        if s.get("failure"):
            f = s["failure"]
            lines += ["", f"Failure ({f.get('kind')}): {f.get('message', '')}"]
        lines += ["", f"Why this stage: {STAGE_WHY.get(name, 'a stage of the workflow')}."]
        skipped = [r for r in storage["files"] if r.startswith(name + "/") and storage["files"][r]["where"] == "artifact"]
        if skipped:
            lines.append(f"Kept out of git (over {storage['max_git_bytes']} bytes; workflow artifact): {', '.join(skipped)}")
        steps.append(git.Step("\n".join(lines), owns=[f"{prefix}/{name}/"], files=under(name)))
    steps += [_repair_step(model, r, "", prefix, entries) for r in manifest.get("repairs") or []]
    status = manifest.get("status")
    steps.append(git.Step(
        f"aipc({model}): manifest and report, {status}\n\n"
        f"The manifest lists every artifact with sha256 and size, the tool versions, and where large files "
        f"are kept; report/ holds the HTML report and its plots linked from the pull request.",
        owns=[f"{prefix}/"], files={f"{prefix}/{r}": e for r, e in entries.items()}))
    return steps


VOLATILE = ("started", "seconds_total")
# A composite run re-measures wall times and the decode loop's speed even when every stage is cached.
TIMING = {"started", "seconds_total", "cached", "seconds", "seconds_per_token", "session_load_seconds",
          "load_seconds", "encoder_seconds"}
TIMING_FILES = {"runtime/tokens.json"}  # the decode loop's tokens plus its timings


def _quiet_single(m: dict) -> dict:
    for k in VOLATILE:
        m.pop(k, None)
    for s in m.get("stages", []):
        s.pop("cached", None)
    return m


def _quiet_timing(x):
    if isinstance(x, dict):
        return {k: _quiet_timing(v) for k, v in x.items() if k not in TIMING}
    if isinstance(x, list):
        return [_quiet_timing(v) for v in x]
    return x


def _quiet_top(m: dict) -> dict:
    m = _quiet_timing(m)
    for section in (m.get("artifacts") or {}, (m.get("storage") or {}).get("files") or {}):
        # timing-only files, and the parts' manifests (compared by their own rule), by size and hash
        for rel in [r for r in section if r in TIMING_FILES or Path(r).name == MANIFEST_NAME]:
            section.pop(rel)
    return m


def _old_blob(repo: git.Repo, parent: str, repo_path: str) -> str | None:
    return repo.git("rev-parse", "-q", "--verify", f"{parent}:{repo_path}", check=False) or None


def _same_run(repo: git.Repo, parent: str, repo_path: str, manifest: dict) -> dict | None:
    """The branch's composite manifest when the new one differs from it only in timings."""
    import json

    old = git.blob_bytes(repo, parent, repo_path)
    try:
        old_m = json.loads(old) if old is not None else None
    except ValueError:
        return None
    if not isinstance(old_m, dict):
        return None
    a, b = _quiet_top(dict(old_m, storage=None)), _quiet_top(dict(manifest, storage=None))
    return old_m if a == b else None


def _manifest_entry(repo: git.Repo, path: Path, parent: str, repo_path: str, quiet=_quiet_single) -> git.Entry:
    """Keep the branch's manifest when only run-time noise (start time, cache flags) changed."""
    import json

    new = path.read_bytes()
    old = git.blob_bytes(repo, parent, repo_path)
    if old is not None:
        try:
            if quiet(json.loads(old)) == quiet(json.loads(new)):
                return git.hash_bytes(repo, old)
        except (ValueError, AttributeError):
            pass
    return git.hash_file(repo, path)


def _statuses(manifest: dict) -> list[Status]:
    out = []
    if is_composite(manifest):
        from bot.report.view import part_figure

        for p in manifest.get("parts") or []:
            desc = part_figure(p) or ("passed" if p.get("passed") else "failed")
            out.append(Status(f"aipc/{p.get('dir')}", "success" if p.get("passed") else "failure", desc[:140]))
        for e in manifest.get("e2e") or []:
            bad = [c.get("name", "") for c in e.get("checks") or [] if not c.get("passed")]
            desc = "passed" if e.get("passed") else "failed: " + "; ".join(bad)
            out.append(Status(f"aipc/e2e/{e.get('name')}", "success" if e.get("passed") else "failure", desc[:140]))
        return out
    for s in manifest.get("stages", []):
        if s.get("passed"):
            desc = f"passed in {float(s.get('seconds') or 0):.2f}s"
        else:
            desc = ((s.get("failure") or {}).get("message") or "failed")
        out.append(Status(f"aipc/{s.get('stage')}", "success" if s.get("passed") else "failure", desc[:140]))
    return out


def _image_links(fg, sha: str, prefix: str, deployment_dir: Path) -> dict:
    from bot.report.plots import LAYERS_PNG, SECONDS_PNG

    def url(name: str) -> str:
        path = f"{prefix}/report/{name}"
        return fg.raw_url(sha, path) if hasattr(fg, "raw_url") else path

    images = {"seconds": url(SECONDS_PNG)}
    if (deployment_dir / "report" / LAYERS_PNG).exists():
        images["layers"] = url(LAYERS_PNG)
    html = f"{prefix}/report/index.html"
    links = {"HTML report": fg.blob_url(sha, html) if hasattr(fg, "blob_url") else html}
    return {"images": images, "links": links}


def _repair_step(model: str, r: dict, part: str, prefix: str, entries: dict) -> "git.Step":
    """One commit per repair attempt, its patch file included; `part` is "" or "<graph>/<variant>/"."""
    from bot.report.view import fmt, patch_name

    rel = f"{part}patches/{patch_name(r)}"
    kept = "kept" if r.get("kept") else "tried and reverted"
    where = f"{part.rstrip('/')} " if part else ""
    msg = (f"aipc({model}): {where}repair {int(r.get('n') or 0):02d} {r.get('repair')} ({r.get('level')}) {kept}\n\n"
           f"Why: {r.get('reason', 'no reason recorded')}\n"
           f"Before: {fmt(r.get('before'))}\nAfter: {fmt(r.get('after'))}\n")
    files = {f"{prefix}/{rel}": entries[rel]} if rel in entries else {}
    return git.Step(msg, owns=[f"{prefix}/{rel}"], files=files)
