"""A small stateful GitHub REST server on loopback, for driving the real PyGithub client.

Branches are read from a real bare repository (the test's `origin`), so "the branch exists on
GitHub" means exactly "git pushed it". Only the endpoints the bot calls exist; anything else is a
404, so a new call in the bot shows up as a failing test instead of passing silently.
Faults (5xx, rate limits) are injected per route with `fail(...)`.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


@dataclass
class Fault:
    method: str
    path: re.Pattern
    status: int
    headers: dict
    body: dict
    times: int


@dataclass
class FakeGitHub:
    bare: Path
    owner: str = "acme"
    name: str = "zoo"
    token: str = "good-token"
    default_branch: str = "main"
    pulls: dict = field(default_factory=dict)
    comments: dict = field(default_factory=dict)
    statuses: dict = field(default_factory=dict)
    requests: list = field(default_factory=list)
    faults: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    # role per login, as GitHub's collaborator permission endpoint names them
    # (admin, maintain, write, triage, read, none); a login missing here answers 404
    roles: dict = field(default_factory=dict)
    # plain issues (not pull requests), by number; numbers share the pull requests' sequence, as on GitHub
    issues: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _any(self):
                try:
                    fake._handle(self)
                except Exception as e:  # a bug in the fake must fail the test, not hang the client
                    fake.errors.append(repr(e))
                    self.send_error(500, repr(e))

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, method: str, path: str, status: int, *, headers: dict | None = None,
             body: dict | None = None, times: int = 1) -> None:
        self.faults.append(Fault(method, re.compile(path), status, headers or {},
                                 body or {"message": "Server Error"}, times))

    def calls(self, method: str | None = None, path: str = "") -> list[tuple[str, str]]:
        return [(m, p) for m, p, _ in self.requests if (method is None or m == method) and path in p]

    # ------------------------------------------------------------------ helpers

    def _branch_sha(self, branch: str) -> str | None:
        return self._ref_sha(f"refs/heads/{branch}")

    def _ref_sha(self, ref: str) -> str | None:
        p = subprocess.run(["git", "-C", str(self.bare), "rev-parse", "--verify", "-q", ref],
                           capture_output=True, text=True)
        return p.stdout.strip() or None

    def _git(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(self.bare), *args], capture_output=True, text=True)

    def open_pull(self, head: str, base: str = "main", *, title: str = "contribution", body: str = "",
                  fork: str | None = None, head_sha: str | None = None) -> int:
        """A contributor's pull request. Same-repo: `head` is a branch of the bare repository. Fork:
        `fork` names the fork (owner/name) and `head_sha` the commit, which is stored, as on GitHub,
        under `refs/pull/<n>/head` of the base repository."""
        n = len(self.pulls) + 1
        self.pulls[n] = {"number": n, "state": "open", "title": title, "body": body, "head": head, "base": base,
                         "labels": [], "fork": fork}
        if fork:
            self._git("update-ref", f"refs/pull/{n}/head", head_sha)
        return n

    def _pull_head_sha(self, pr: dict) -> str | None:
        if pr.get("fork"):
            return self._ref_sha(f"refs/pull/{pr['number']}/head")
        return self._branch_sha(pr["head"])

    def _repo_url(self) -> str:
        return f"{self.url}/repos/{self.owner}/{self.name}"

    def _pull_json(self, pr: dict) -> dict:
        n = pr["number"]
        return {
            "id": 1000 + n, "number": n, "state": pr["state"], "title": pr["title"], "body": pr["body"],
            "url": f"{self._repo_url()}/pulls/{n}", "html_url": f"{self.url}/{self.owner}/{self.name}/pull/{n}",
            "issue_url": f"{self._repo_url()}/issues/{n}",
            "head": {"ref": pr["head"], "sha": self._pull_head_sha(pr),
                     "label": f"{(pr.get('fork') or self.owner).split('/')[0]}:{pr['head']}",
                     "repo": {"full_name": pr.get("fork") or f"{self.owner}/{self.name}"}},
            "base": {"ref": pr["base"], "label": f"{self.owner}:{pr['base']}", "sha": self._branch_sha(pr["base"]),
                     "repo": {"full_name": f"{self.owner}/{self.name}"}},
            "labels": [{"id": i, "name": l, "url": f"{self._repo_url()}/labels/{l}"} for i, l in enumerate(pr["labels"])],
            "user": {"login": "aipc-bot"},
        }

    # ------------------------------------------------------------------ the router

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlparse(h.path)
        path, query = unquote(url.path), parse_qs(url.query)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else {}
        self.requests.append((h.command, path, body))

        def reply(status: int, data, headers: dict | None = None):
            out = json.dumps(data).encode()
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(out)))
            for k, v in (headers or {}).items():
                h.send_header(k, str(v))
            h.end_headers()
            h.wfile.write(out)

        auth = h.headers.get("Authorization", "")
        if auth not in (f"token {self.token}", f"Bearer {self.token}"):
            return reply(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
        for f in self.faults:
            if f.times > 0 and f.method == h.command and f.path.search(path):
                f.times -= 1
                return reply(f.status, f.body, f.headers)

        repo = f"/repos/{self.owner}/{self.name}"
        if not path.startswith(repo):
            return reply(404, {"message": "Not Found"})
        rest, m = path[len(repo):], None
        if h.command == "GET" and rest == "":
            return reply(200, {"id": 1, "name": self.name, "full_name": f"{self.owner}/{self.name}",
                               "owner": {"login": self.owner}, "default_branch": self.default_branch,
                               "url": self._repo_url(), "html_url": f"{self.url}/{self.owner}/{self.name}"})
        if h.command == "GET" and (m := re.fullmatch(r"/git/ref/(.+)", rest)):
            sha = self._ref_sha(f"refs/{m.group(1)}")
            if not sha:
                return reply(404, {"message": "Not Found"})
            return reply(200, {"ref": f"refs/{m.group(1)}", "url": f"{self._repo_url()}/git/refs/{m.group(1)}",
                               "object": {"sha": sha, "type": "commit"}})
        if rest == "/pulls" and h.command == "GET":
            items = [p for p in self.pulls.values()
                     if p["state"] == query.get("state", ["open"])[0]
                     and ("head" not in query or f"{self.owner}:{p['head']}" == query["head"][0])]
            return reply(200, [self._pull_json(p) for p in items])
        if rest == "/pulls" and h.command == "POST":
            if not self._branch_sha(body["head"]):
                return reply(422, {"message": "Validation Failed", "errors": [{"field": "head", "code": "invalid"}]})
            if any(p["head"] == body["head"] and p["state"] == "open" for p in self.pulls.values()):
                return reply(422, {"message": f"A pull request already exists for {self.owner}:{body['head']}."})
            n = len(self.pulls) + 1
            self.pulls[n] = {"number": n, "state": "open", "title": body["title"], "body": body.get("body", ""),
                             "head": body["head"], "base": body["base"], "labels": []}
            return reply(201, self._pull_json(self.pulls[n]))
        if (m := re.fullmatch(r"/pulls/(\d+)", rest)) and int(m.group(1)) in self.pulls:
            pr = self.pulls[int(m.group(1))]
            if h.command == "PATCH":
                pr.update({k: body[k] for k in ("title", "body", "state", "base") if k in body})
            return reply(200, self._pull_json(pr))
        if (m := re.fullmatch(r"/issues/(\d+)/labels(?:/(.+))?", rest)) and int(m.group(1)) in self.pulls:
            pr = self.pulls[int(m.group(1))]
            if h.command == "POST":
                names = body if isinstance(body, list) else body.get("labels", [])
                pr["labels"] += [l for l in names if l not in pr["labels"]]
            elif h.command == "DELETE" and m.group(2):
                if m.group(2) not in pr["labels"]:
                    return reply(404, {"message": "Label does not exist"})
                pr["labels"].remove(m.group(2))
            return reply(200, [{"id": i, "name": l, "url": f"{self._repo_url()}/labels/{l}"}
                               for i, l in enumerate(pr["labels"])])
        if (m := re.fullmatch(r"/issues/(\d+)/comments", rest)) and int(m.group(1)) in self.pulls:
            n = int(m.group(1))
            items = self.comments.setdefault(n, [])
            if h.command == "POST":
                cid = 500 + sum(len(v) for v in self.comments.values())  # ids are unique across PRs
                c = {"id": cid, "body": body["body"], "user": {"login": "aipc-bot"},
                     "url": f"{self._repo_url()}/issues/comments/{cid}",
                     "html_url": f"{self.url}/{self.owner}/{self.name}/pull/{n}#issuecomment-{cid}"}
                items.append(c)
                return reply(201, c)
            return reply(200, items)
        if (m := re.fullmatch(r"/issues/comments/(\d+)", rest)) and h.command in ("GET", "PATCH"):
            c = next((c for items in self.comments.values() for c in items if c["id"] == int(m.group(1))), None)
            if c is None:
                return reply(404, {"message": "Not Found"})
            if h.command == "PATCH":
                c["body"] = body["body"]
            return reply(200, c)
        if h.command == "GET" and (m := re.fullmatch(r"/pulls/(\d+)/files", rest)) and int(m.group(1)) in self.pulls:
            pr = self.pulls[int(m.group(1))]
            diff = self._git("diff", "--name-status", f"{self._branch_sha(pr['base'])}...{self._pull_head_sha(pr)}")
            status = {"A": "added", "M": "modified", "D": "removed"}
            files = [{"filename": line.split("\t")[-1], "status": status.get(line[0], "modified"), "sha": "0" * 40}
                     for line in diff.stdout.splitlines() if line.strip()]
            return reply(200, files)
        if h.command == "GET" and (m := re.fullmatch(r"/collaborators/([^/]+)/permission", rest)):
            role = self.roles.get(m.group(1))
            if role is None:
                return reply(404, {"message": "Not Found"})
            legacy = {"maintain": "write", "triage": "read"}.get(role, role)
            return reply(200, {"permission": legacy, "role_name": role, "user": {"login": m.group(1)}})
        if (m := re.fullmatch(r"/git/refs(?:/(.+))?", rest)) and h.command in ("POST", "PATCH"):
            ref = body["ref"] if h.command == "POST" else f"refs/{m.group(1)}"
            if h.command == "POST" and self._ref_sha(ref):
                return reply(422, {"message": "Reference already exists"})
            if h.command == "PATCH" and not self._ref_sha(ref):
                return reply(422, {"message": "Reference does not exist"})
            if self._git("update-ref", ref, body["sha"]).returncode:
                return reply(422, {"message": "Object does not exist"})
            return reply(201 if h.command == "POST" else 200,
                         {"ref": ref, "url": f"{self._repo_url()}/git/{ref}", "object": {"sha": body["sha"], "type": "commit"}})
        if h.command == "GET" and (m := re.fullmatch(r"/commits/([0-9a-f]{40})", rest)):
            return reply(200, {"sha": m.group(1), "url": f"{self._repo_url()}/commits/{m.group(1)}"})
        if h.command == "GET" and (m := re.fullmatch(r"/commits/([0-9a-f]{40})/status", rest)):
            latest = {}
            for s in self.statuses.get(m.group(1), []):
                latest[s["context"]] = s
            states = {s["state"] for s in latest.values()}
            state = "failure" if states & {"failure", "error"} else ("success" if latest else "pending")
            return reply(200, {"state": state, "sha": m.group(1), "total_count": len(latest),
                               "statuses": list(latest.values())})
        if h.command == "POST" and (m := re.fullmatch(r"/statuses/([0-9a-f]{40})", rest)):
            s = {"id": int(time.time() * 1000) % 10**9, "state": body["state"], "context": body.get("context", "default"),
                 "description": body.get("description"), "target_url": body.get("target_url")}
            self.statuses.setdefault(m.group(1), []).append(s)
            return reply(201, s)
        if (answer := self._issue_routes(h.command, rest, query, body)) is not None:
            return reply(*answer)
        return reply(404, {"message": "Not Found", "path": path})


    # ------------------------------------------------------------------ issues (list, create, read, edit)

    def _issue_json(self, i: dict) -> dict:
        n = i["number"]
        return {"id": 2000 + n, "number": n, "title": i["title"], "body": i["body"], "state": i["state"],
                "url": f"{self._repo_url()}/issues/{n}", "html_url": f"{self.url}/{self.owner}/{self.name}/issues/{n}",
                "labels": [{"id": k, "name": l, "url": f"{self._repo_url()}/labels/{l}"} for k, l in enumerate(i["labels"])],
                "user": {"login": "aipc-bot"}}

    def _issue_routes(self, method: str, rest: str, query: dict, body: dict):
        """(status, json) for the issue endpoints, None for anything else. Listing issues includes pull
        requests (with a `pull_request` key), as GitHub's does, so callers must filter them out."""
        if rest == "/issues" and method == "GET":
            state, labels = query.get("state", ["open"])[0], set(filter(None, query.get("labels", [""])[0].split(",")))
            items = [self._issue_json(i) for i in self.issues.values()]
            items += [{**self._pull_json(p), "pull_request": {"url": f"{self._repo_url()}/pulls/{p['number']}"}}
                      for p in self.pulls.values()]
            items = [i for i in items if (state == "all" or i["state"] == state)
                     and labels <= {l["name"] for l in i["labels"]}]
            return 200, sorted(items, key=lambda i: -i["number"])
        if rest == "/issues" and method == "POST":
            if not body.get("title"):
                return 422, {"message": "Validation Failed", "errors": [{"field": "title", "code": "missing_field"}]}
            n = max([0, *self.pulls, *self.issues]) + 1
            self.issues[n] = {"number": n, "title": body["title"], "body": body.get("body", ""), "state": "open",
                              "labels": [l if isinstance(l, str) else l["name"] for l in body.get("labels", [])]}
            return 201, self._issue_json(self.issues[n])
        if (m := re.fullmatch(r"/issues/(\d+)", rest)) and int(m.group(1)) in self.issues and method in ("GET", "PATCH"):
            i = self.issues[int(m.group(1))]
            if method == "PATCH":
                if body.get("state") not in (None, "open", "closed"):
                    return 422, {"message": "Validation Failed", "errors": [{"field": "state", "code": "invalid"}]}
                i.update({k: body[k] for k in ("title", "body", "state", "labels") if k in body})
            return 200, self._issue_json(i)
        return None


# ---------------------------------------------------------------------- the world around the fake
# A user's checkout with a bare `origin`, and a synthetic deployment folder shaped like the
# pipeline's (stage folders, result.json, manifest.json, a private .work/ store).

STAGES = ["load", "export", "optimize", "compat", "quantize", "compile", "validate", "package"]
HUMAN = {"GIT_AUTHOR_NAME": "Human Dev", "GIT_AUTHOR_EMAIL": "human@example.com",
         "GIT_COMMITTER_NAME": "Human Dev", "GIT_COMMITTER_EMAIL": "human@example.com"}


# A forge that neither paces its requests nor waits long before a retry: the fake answers at once.
FAST = {"retries": 2, "backoff": 0.01, "max_rate_limit_wait": 5, "seconds_between_requests": 0,
        "seconds_between_writes": 0, "timeout": 5}
GITHUB_ENV = ("AIPC_FORGE", "GITHUB_TOKEN", "GITHUB_REPOSITORY", "GITHUB_API_URL", "GITHUB_SERVER_URL",
              "GITHUB_RUN_ID", "GITHUB_REF_NAME", "GITHUB_HEAD_REF")


@contextmanager
def serving(bare: Path, monkeypatch, **options):
    """A FakeGitHub for `bare` on loopback with the environment the forge reads pointed at it (and the
    rest of Actions' variables cleared); afterwards it must have answered every call it was sent."""
    for k in GITHUB_ENV:
        monkeypatch.delenv(k, raising=False)
    fake = FakeGitHub(bare, **options)
    monkeypatch.setenv("GITHUB_API_URL", fake.start())
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/zoo")
    monkeypatch.setenv("GITHUB_TOKEN", fake.token)
    try:
        yield fake
    finally:
        fake.stop()
    assert fake.errors == []


def sh(cwd: Path, *args: str, env: dict | None = None) -> str:
    import os

    p = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True,
                       env={**os.environ, **HUMAN, **(env or {})})
    if p.returncode:
        raise RuntimeError(f"git {args}: {p.stderr}")
    return p.stdout.strip()


def make_repo(tmp: Path) -> tuple[Path, Path]:
    """A checkout (`work`, branch main, one commit with a model folder) and its bare `origin`."""
    bare, work = tmp / "origin.git", tmp / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "models" / "tiny").mkdir(parents=True)
    (work / "models" / "tiny" / "aipc.yaml").write_text("name: tiny\nentry: model.py:build\n")
    (work / "README.md").write_text("model zoo\n")
    sh(work, "add", "-A")
    sh(work, "commit", "-q", "-m", "zoo: add tiny")
    sh(work, "remote", "add", "origin", str(bare))
    sh(work, "push", "-q", "origin", "main")
    return work, bare


def make_deployment(out: Path, *, model: str = "tiny", status: str = "deployed", cosine: float = 0.9991,
                    repairs: list | None = None, big_bytes: int = 0, llm: dict | None = None,
                    localization: dict | None = None, log: str = "") -> dict:
    """Write a deployment folder like the pipeline's and return its manifest."""
    out.mkdir(parents=True, exist_ok=True)
    (out / ".work" / "load-0123").mkdir(parents=True, exist_ok=True)
    (out / ".work" / "load-0123" / "private.bin").write_bytes(b"store")
    (out / ".gitignore").write_text(".work/\n")
    stages = []
    failed_at = "export" if status == "failed" else None
    for i, name in enumerate(STAGES):
        d = out / name
        d.mkdir(exist_ok=True)
        passed = name != failed_at
        checks, metrics, failure = [], {}, None
        if name == "validate":
            checks = [{"name": "out cosine", "passed": cosine >= 0.95, "value": cosine, "threshold": 0.95, "detail": ""},
                      {"name": "out max-abs", "passed": True, "value": 0.01, "threshold": 0.05, "detail": ""}]
            metrics = {"outputs": {"out": {"cosine": cosine, "sqnr_db": 30.5, "psnr_db": 41.2, "max_abs": 0.01}},
                       "latency_ms_median": 3.25}
        if name == "compile":
            (d / "model_ctx_qnn.bin").write_bytes(b"\x01" * max(big_bytes, 64))
        if not passed:
            failure = {"stage": name, "kind": "export_error", "message": "torch.onnx.export failed: Unsupported op",
                       "nodes": [], "details": {}, "log": log}
        (d / "result.json").write_text(json.dumps({"stage": name, "passed": passed, **({"cosine": cosine} if name == "validate" else {})}) + "\n")
        stages.append({"stage": name, "passed": passed, "artifacts": {}, "checks": checks, "metrics": metrics,
                       "failure": failure, "seconds": 0.1 * (i + 1), "key": f"k{i}", "cached": False})
        if not passed:
            break
    ran = {s["stage"] for s in stages}
    for name in STAGES:
        if name not in ran:
            import shutil

            shutil.rmtree(out / name, ignore_errors=True)
    m = {"model": model, "status": status,
         "target": {"runtime": "qnn", "backend": "htp", "soc": "SM8650", "precision": "w8a8"},
         "backend": "ort-qnn", "versions": {"aipc-bot": "0.1.0"}, "workflow": STAGES,
         "started": time.strftime("%Y-%m-%dT%H:%M:%SZ"), "seconds_total": 3.6, "stages": stages, "artifacts": {}}
    if repairs is not None:
        m["repairs"] = repairs
    if llm is not None:
        m["llm"] = llm
    if localization is not None:
        m["localization"] = localization
    (out / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")
    return m


def repair(n: int = 1, *, kept: bool = True, diff: str | None = None) -> dict:
    return {"n": n, "repair": "resize-nearest", "level": "graph", "reason": "HTP rejected Resize (bilinear, align_corners)",
            "kept": kept, "diff": diff if diff is not None else "--- a/model.py\n+++ b/model.py\n@@ -1 +1 @@\n-x = up(x)\n+x = up_nearest(x)\n",
            "before": {"validate": {"out": {"cosine": 0.61}}}, "after": {"validate": {"out": {"cosine": 0.9991}}},
            "seconds": 1.5}
