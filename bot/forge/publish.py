"""`publish`: the one entry point `bot.deploy` calls after a run (see the package docstring).

In order: whose branch is it (a human commit stops the bot), where each file is stored, the commits
(`bot.forge.branch`), then delivery: push, and open or update the pull request with the body, labels
and one commit status per stage. The deploy wrote the files (report, patches) and every text comes
from the report layer (`bot.report.Texts`): the forge only delivers them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bot import __version__
from bot.errors import BadInput
from bot.forge import branch as content
from bot.forge import git
from bot.forge.base import Draft, PrResult, Status
from bot.forge.registry import get_forge
from bot.manifest import MANIFEST, Manifest
from bot.report import Texts, write_files
from bot.plots import LAYERS_PNG, SECONDS_PNG, TASK_PNG
from bot.store import WORK

DEPLOYMENTS = "deployments"
PR_BODY_CACHE = "pr_body.md"  # the last PR body and its render key, in the private store (never published)


@dataclass
class PublishResult:
    branch: str
    sha: str | None = None
    commits: list[str] = field(default_factory=list)
    pushed: bool = False
    pr: PrResult | None = None
    stopped_by: str | None = None  # sha of a human commit that stopped the bot
    storage: dict = field(default_factory=dict)


def publishing_repo(model_dir: Path, say: Callable[[str], None]) -> git.Repo | None:
    """The repository to publish into, or None (and why) when publishing is off or there is none."""
    if os.environ.get("AIPC_FORGE", "").lower() in ("off", "0", "none"):
        return None
    repo = git.find_repo(Path(model_dir))
    if repo is None:
        say(f"not publishing: {model_dir} is not inside a git repository (no branch, no pull request)")
    return repo


def publish(*, deployment_dir: Path, model_dir: Path, manifest: dict, push: bool, pr: bool,
            say: Callable[[str], None] = lambda m: None, forge: str | None = None,
            forge_options: dict | None = None, base: str = "HEAD", remote: str = "origin",
            max_git_bytes: int | None = None, branch: str | None = None,
            pr_base: str | None = None) -> PublishResult | None:
    """Commit the deployment to `aipc/<model>` (or `branch`) and open or update its pull request
    (into `pr_base`, else the branch the deployed commit is on; see `bot.forge.contributor`)."""
    repo = publishing_repo(model_dir, say)
    if repo is None:
        return None
    model = Manifest.parse(manifest).model_or(Path(deployment_dir).name)
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
        os.environ.get("AIPC_MAX_GIT_BYTES", content.DEFAULT_MAX_GIT_BYTES))
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

    # 2. Where each file is stored. The deploy wrote the report and the patches; a re-run that only
    # re-measured the timings over parts is shown from the branch's manifest, so its files are rendered again.
    deployment_dir = Path(deployment_dir)
    prefix = f"{DEPLOYMENTS}/{model}"
    start_tip = remote_tip or local_tip
    parent = head
    if start_tip:
        last = git.log_first_parent(repo, start_tip, limit=1)
        if last and last[0].base == head:
            parent = start_tip
    if content.timed_over_parts(manifest):
        # A re-run re-measures the decode loop and the wall times; when nothing but those changed,
        # the report is rendered from the branch's manifest so the branch and the PR stay as they are.
        same = content.same_run(repo, parent, f"{prefix}/{content.MANIFEST}", manifest)
        if same is not None:
            manifest = same
            write_files(deployment_dir, manifest)
    if not (deployment_dir / ".gitignore").exists():
        (deployment_dir / ".gitignore").write_text(".work/\n")
    lfs = git.lfs_available(repo)
    storage = content.storage_plan(deployment_dir, manifest, limit, lfs)
    manifest = {**manifest, "storage": storage}
    result.storage = storage
    from bot.pipeline.manifest import update_section  # deferred: bot.pipeline's runner imports the stages

    if (deployment_dir / MANIFEST).exists():
        update_section(deployment_dir, "storage", storage)

    # 3. Commits on top of our own earlier tip when it was built on this same HEAD, else fresh.
    texts = Texts(manifest)
    steps = content.steps(repo, deployment_dir, prefix, texts, storage, parent)
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
    images = image_links(fg, new, prefix, deployment_dir)
    draft = Draft(model=model, branch=branch, base=pr_base or (_base_branch(repo) if pr else repo.head_ref()),
                  head_sha=new, title=texts.title,
                  body=texts.body(images["images"], images["links"], cache=deployment_dir / WORK / PR_BODY_CACHE),
                  labels=texts.labels, statuses=[Status(s.context, s.state, s.description) for s in texts.statuses()])
    result.pr = fg.open_or_update(draft)
    what = "opened" if result.pr.created else ("updated" if result.pr.edited else "unchanged")
    say(f"pull request {what}: {result.pr.url}")
    return result


def _base_branch(repo: git.Repo) -> str | None:
    """The branch the pushed commit is on: Actions says it, else HEAD's branch, else the default."""
    if os.environ.get("GITHUB_REF_NAME") and os.environ.get("GITHUB_REF_TYPE", "branch") == "branch" \
            and not os.environ.get("GITHUB_HEAD_REF"):
        return os.environ["GITHUB_REF_NAME"]
    ref = repo.head_ref()
    return ref.removeprefix("refs/heads/") if ref else None


def image_links(fg, sha: str, prefix: str, deployment_dir: Path) -> dict:
    def url(name: str) -> str:
        path = f"{prefix}/report/{name}"
        return fg.raw_url(sha, path) if hasattr(fg, "raw_url") else path

    images = {"seconds": url(SECONDS_PNG)}
    if (deployment_dir / "report" / LAYERS_PNG).exists():
        images["layers"] = url(LAYERS_PNG)
    if (deployment_dir / "report" / TASK_PNG).exists():
        images["task"] = url(TASK_PNG)
    html = f"{prefix}/report/index.html"
    links = {"HTML report": fg.blob_url(sha, html) if hasattr(fg, "blob_url") else html}
    return {"images": images, "links": links}
