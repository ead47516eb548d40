"""The GitHub forge, through PyGithub (GitHub Enterprise via `base_url`).

Settings come from the environment a GitHub Actions job already has: `GITHUB_TOKEN`,
`GITHUB_API_URL` (Enterprise: `https://<host>/api/v3`), `GITHUB_REPOSITORY` (else the `origin`
remote's URL), `GITHUB_SERVER_URL` for links. Every API error becomes a `BadInput` that says what
to fix; transient ones (5xx, rate limits with `Retry-After` / `x-ratelimit-reset`) are retried a
bounded number of times by PyGithub's `GithubRetry` first.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from bot.errors import BadInput
from bot.forge.base import MANAGED_LABELS, Draft, PrResult, body_hash, human_marker, stored_hash, with_hash
from bot.forge.git import Repo, remote_url, slug_from_url
from bot.forge.local import human_comment

DEFAULT_API = "https://api.github.com"


def server_url(api_url: str) -> str:
    """Where humans (and raw file links) live: api.github.com → github.com; <host>/api/v3 → <host>."""
    if env := os.environ.get("GITHUB_SERVER_URL"):
        return env.rstrip("/")
    api_url = api_url.rstrip("/")
    if api_url == DEFAULT_API:
        return "https://github.com"
    return api_url[: -len("/api/v3")] if api_url.endswith("/api/v3") else api_url


@dataclass(frozen=True)
class PullInfo:
    """What the gate and contributor mode need to know about a pull request."""

    number: int
    head_ref: str
    head_sha: str
    head_repo: str  # owner/name of the repository the head branch lives in
    base_ref: str
    base_repo: str

    @property
    def fork(self) -> bool:
        return self.head_repo != self.base_repo


@dataclass(frozen=True)
class CommentResult:
    id: int
    url: str
    action: str  # created | edited | unchanged


@dataclass(frozen=True)
class IssueResult:
    number: int  # 0 when there was no issue to act on
    url: str
    action: str  # created | edited | reopened | unchanged | closed | none


class GitHubForge:
    name = "github"

    def __init__(self, repo: Repo, *, token: str | None = None, base_url: str | None = None,
                 slug: str | None = None, retries: int = 5, backoff: float = 1.0,
                 max_rate_limit_wait: float = 120.0, timeout: int = 30, seconds_between_requests: float = 0.25,
                 seconds_between_writes: float = 1.0, **_):
        self.repo = repo
        self.token = token if token is not None else os.environ.get("GITHUB_TOKEN", "")
        self.base_url = (base_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API).rstrip("/")
        self.slug = slug or os.environ.get("GITHUB_REPOSITORY") or slug_from_url(remote_url(repo) or "")
        self.retries, self.backoff, self.max_wait = retries, backoff, max_rate_limit_wait
        self.timeout, self.between = timeout, (seconds_between_requests, seconds_between_writes)
        self.gh_repo = None

    # ------------------------------------------------------------------ plumbing

    @contextlib.contextmanager
    def _api(self, doing: str):
        """Turn PyGithub's exceptions into one paragraph a person can act on."""
        import requests  # deferred: only when the forge talks to GitHub
        from github import BadCredentialsException, GithubException, UnknownObjectException  # deferred: PyGithub only when the forge talks to GitHub

        try:
            yield
        except BadCredentialsException as e:
            raise BadInput(f"GitHub rejected the token while {doing} (HTTP {e.status}: bad credentials)",
                           where=self.base_url, hint="set GITHUB_TOKEN to a token with contents, pull-requests "
                                                      "and statuses write access") from None
        except UnknownObjectException as e:
            raise BadInput(f"GitHub answered 404 while {doing}: repository {self.slug!r} does not exist or the "
                           f"token cannot see it", where=self.base_url,
                           hint="check GITHUB_REPOSITORY / the origin remote and the token's scope") from e
        except GithubException as e:
            msg = (e.data or {}).get("message") if isinstance(e.data, dict) else str(e.data)
            raise BadInput(f"GitHub answered HTTP {e.status} while {doing}: {msg}", where=self.base_url) from None
        except requests.exceptions.RetryError as e:
            raise BadInput(f"GitHub kept failing while {doing} after {self.retries} retries ({e})",
                           where=self.base_url, hint="try again later; nothing local was lost") from None
        except requests.exceptions.ConnectionError as e:
            raise BadInput(f"cannot reach GitHub while {doing}: {e}", where=self.base_url) from None

    def connect(self) -> None:
        from github import Auth, Github, GithubRetry  # deferred: PyGithub only when the forge talks to GitHub

        if not self.token:
            raise BadInput("GITHUB_TOKEN is not set, so the pull request cannot be opened",
                           where="--pr", hint="export GITHUB_TOKEN (in Actions: `env: GITHUB_TOKEN: "
                                              "${{ secrets.GITHUB_TOKEN }}`)")
        if not self.slug:
            raise BadInput("cannot tell which GitHub repository to use", where="--pr",
                           hint="set GITHUB_REPOSITORY=owner/name or add an `origin` remote")
        retry = GithubRetry(total=self.retries, backoff_factor=self.backoff, max_rate_limit_wait=self.max_wait,
                            secondary_rate_wait=min(60.0, self.max_wait),
                            status_forcelist=[429, 500, 502, 503, 504])
        self.gh = Github(auth=Auth.Token(self.token), base_url=self.base_url, retry=retry, timeout=self.timeout,
                         seconds_between_requests=self.between[0], seconds_between_writes=self.between[1])
        with self._api(f"reading repository {self.slug}"):
            self.gh_repo = self.gh.get_repo(self.slug)
            self.owner = self.gh_repo.owner.login

    def _find(self, branch: str):
        with self._api(f"looking for the open pull request from {branch}"):
            return next(iter(self.gh_repo.get_pulls(state="open", head=f"{self.owner}:{branch}")), None)

    # ------------------------------------------------------------------ the protocol

    def open_or_update(self, draft: Draft) -> PrResult:
        if self.gh_repo is None:
            self.connect()
        pr = self._find(draft.branch)
        result = PrResult(None, "")
        if pr is None:
            base = draft.base or self.gh_repo.default_branch
            with self._api(f"opening the pull request {draft.branch} → {base}"):
                pr = self.gh_repo.create_pull(base=base, head=draft.branch, title=draft.title,
                                              body=with_hash(draft.body), maintainer_can_modify=True)
            result.created = True
        elif pr.title != draft.title or stored_hash(pr.body) != body_hash(draft.body):
            with self._api(f"updating pull request #{pr.number}"):
                pr.edit(title=draft.title, body=with_hash(draft.body))
            result.edited = True
        result.number, result.url = pr.number, pr.html_url
        current = {l.name for l in pr.labels}
        want = set(draft.labels)
        result.labels_added = sorted(want - current)
        result.labels_removed = sorted((current & set(MANAGED_LABELS)) - want)
        with self._api(f"labelling pull request #{pr.number}"):
            if result.labels_added:
                pr.add_to_labels(*result.labels_added)
            for name in result.labels_removed:
                pr.remove_from_labels(name)
        result.statuses_posted = self._statuses(draft)
        return result

    def _statuses(self, draft: Draft) -> int:
        """One commit status per stage; only those that differ from what the commit already shows."""
        run = None
        if os.environ.get("GITHUB_RUN_ID") and self.slug:
            run = f"{server_url(self.base_url)}/{self.slug}/actions/runs/{os.environ['GITHUB_RUN_ID']}"
        with self._api(f"setting commit statuses on {draft.head_sha[:12]}"):
            commit = self.gh_repo.get_commit(draft.head_sha)
            have = {s.context: (s.state, s.description) for s in commit.get_combined_status().statuses}
            posted = 0
            for s in draft.statuses:
                if have.get(s.context) == (s.state, s.description[:140]):
                    continue
                kw = {"target_url": run} if run else {}
                commit.create_status(state=s.state, description=s.description[:140], context=s.context, **kw)
                posted += 1
        return posted

    def report_human_commit(self, branch: str, sha: str, author: str, subject: str) -> None:
        if self.gh_repo is None:
            self.connect()
        pr = self._find(branch)
        if pr is None:
            return
        with self._api(f"commenting on pull request #{pr.number}"):
            if any(human_marker(sha) in (c.body or "") for c in pr.get_issue_comments()):
                return
            pr.create_issue_comment(human_comment(branch, sha, author, subject))

    # ------------------------------------------------------------------ contributor PRs, commands, the fork gate

    def _ready(self) -> None:
        if self.gh_repo is None:
            self.connect()

    def role(self, login: str) -> str:
        """The user's role on this repository (admin, maintain, write, triage, read), "none" when GitHub
        does not know them as a collaborator."""
        from github import UnknownObjectException  # deferred: PyGithub only when the forge talks to GitHub

        self._ready()
        with self._api(f"reading {login}'s permission"):
            try:
                return self.gh_repo.get_collaborator_role_name(login) or "none"
            except UnknownObjectException:
                return "none"

    def pull_info(self, number: int) -> PullInfo:
        self._ready()
        with self._api(f"reading pull request #{number}"):
            pr = self.gh_repo.get_pull(number)
            return PullInfo(number=pr.number, head_ref=pr.head.ref, head_sha=pr.head.sha,
                            head_repo=pr.head.repo.full_name if pr.head.repo else "(deleted fork)",
                            base_ref=pr.base.ref, base_repo=pr.base.repo.full_name)

    def pull_files(self, number: int) -> list[tuple[str, str]]:
        """(path, status) of every file the pull request changes; status is added, modified, removed, …"""
        self._ready()
        with self._api(f"listing the files of pull request #{number}"):
            return [(f.filename, f.status) for f in self.gh_repo.get_pull(number).get_files()]

    def upsert_comment(self, number: int, marker: str, body: str) -> CommentResult:
        """One comment per `marker` on a PR or issue: created once, then edited in place; an unchanged
        body writes nothing."""
        self._ready()
        text = f"{body.rstrip()}\n\n{marker}\n"
        with self._api(f"commenting on #{number}"):
            pr = self.gh_repo.get_pull(number)
            mine = next((c for c in pr.get_issue_comments() if marker in (c.body or "")), None)
            if mine is None:
                c = pr.create_issue_comment(text)
                return CommentResult(c.id, c.html_url or c.url, "created")
            if _same_text(mine.body, text):
                return CommentResult(mine.id, mine.html_url or mine.url, "unchanged")
            mine.edit(text)
            return CommentResult(mine.id, mine.html_url or mine.url, "edited")

    def upsert_issue(self, title: str, marker: str, body: str, *, open: bool = True,
                     label: str = "aipc:nightly") -> "IssueResult":
        """One issue per `marker` (found among the issues labelled `label`, open or closed): created
        when `open` and there is none, edited in place (reopened if closed), left alone when the body
        is unchanged; with `open=False` an open one gets `body` as its last word and is closed."""
        self._ready()
        text = f"{body.rstrip()}\n\n{marker}\n"
        with self._api(f"looking for the issue {title!r}"):
            mine = max((i for i in self.gh_repo.get_issues(state="all", labels=[label])
                        if i.pull_request is None and marker in (i.body or "")), key=lambda i: i.number, default=None)
        if not open:
            if mine is None or mine.state != "open":
                return IssueResult(mine.number if mine else 0, mine.html_url if mine else "", "none")
            with self._api(f"closing issue #{mine.number}"):
                mine.edit(body=text, state="closed")
            return IssueResult(mine.number, mine.html_url, "closed")
        if mine is None:
            with self._api(f"opening the issue {title!r}"):
                issue = self.gh_repo.create_issue(title=title, body=text, labels=[label])
            return IssueResult(issue.number, issue.html_url, "created")
        if mine.state == "open" and mine.title == title and _same_text(mine.body, text):
            return IssueResult(mine.number, mine.html_url, "unchanged")
        action = "reopened" if mine.state != "open" else "edited"
        with self._api(f"updating issue #{mine.number}"):
            mine.edit(title=title, body=text, state="open")
        return IssueResult(mine.number, mine.html_url, action)

    def pinned(self, name: str) -> str | None:
        """The commit a ref of this repository points at (`name` without `refs/`), or None."""
        from github import UnknownObjectException  # deferred: PyGithub only when the forge talks to GitHub

        self._ready()
        with self._api(f"reading refs/{name}"):
            try:
                return self.gh_repo.get_git_ref(name).object.sha
            except UnknownObjectException:
                return None

    def pin(self, name: str, sha: str) -> None:
        """Point `refs/<name>` at `sha` (created or moved), so that commit stays fetchable here."""
        self._ready()
        with self._api(f"pinning {sha[:12]} as refs/{name}"):
            if self.pinned(name) is None:
                self.gh_repo.create_git_ref(f"refs/{name}", sha)
            else:
                ref = self.gh_repo.get_git_ref(name)
                ref.object  # complete the lazy ref, so edit() goes to the URL GitHub gave (…/git/refs/…)
                ref.edit(sha, force=True)

    def raw_url(self, sha: str, path: str) -> str:
        return f"{server_url(self.base_url)}/{self.slug}/raw/{sha}/{path}"

    def blob_url(self, sha: str, path: str) -> str:
        return f"{server_url(self.base_url)}/{self.slug}/blob/{sha}/{path}"


def _same_text(a: str | None, b: str) -> bool:
    norm = lambda t: "\n".join(line.rstrip() for line in (t or "").replace("\r\n", "\n").strip().splitlines())
    return norm(a) == norm(b)


def pr_head_branch(number: int, repo_dir: Path | None = None) -> str:
    """The head branch of a pull request: how a PR comment command finds its model."""
    forge = GitHubForge(Repo(Path(repo_dir or Path.cwd())))
    forge.connect()
    with forge._api(f"reading pull request #{number}"):
        return forge.gh_repo.get_pull(number).head.ref
