"""Who may command the bot, and the gate that keeps fork code off the self-hosted runner.

Everything here runs on a GitHub-hosted runner, from the default branch's code, before any job is
queued on the self-hosted one:

- a PR comment command is accepted only from a user whose role on the repository is admin,
  maintain or write, as the API says (`GET /collaborators/{user}/permission`), not as the comment's
  `author_association` guesses (that one says MEMBER for any org member, even read-only);
- a pull request from a fork gets one comment asking a maintainer to read the code and comment
  `/aipc approve`; the approval pins the head commit the maintainer read as
  `refs/aipc/approved/pr-<N>` in this repository, and only that commit is deployed. A later push
  to the fork moves the head away from the pinned commit, so it needs a new approval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from bot.changes import models_in
from bot.pr_commands import Command, parse, parse_bot_branch
from bot.errors import BadInput
from bot.forge.github import GitHubForge, PullInfo

WRITE_ROLES = ("admin", "maintain", "write")
GATE_MARKER = "<!-- aipc:fork-gate -->"


def approval_ref(number: int) -> str:
    """Where the approved head commit of a fork's PR is pinned (without the leading `refs/`)."""
    return f"aipc/approved/pr-{number}"


def check_permission(forge: GitHubForge, actor: str) -> str:
    """The actor's role when it may command the bot; a BadInput (exit 2) otherwise."""
    if not actor:
        raise BadInput("no user given for the permission check", where="--actor")
    role = forge.role(actor)
    if role not in WRITE_ROLES:
        raise BadInput(f"@{actor} has the role {role!r} on {forge.slug}; commands need write access "
                       f"({', '.join(WRITE_ROLES)})", where="permission check")
    return role


def approved_sha(forge: GitHubForge, pr: PullInfo) -> str | None:
    return forge.pinned(approval_ref(pr.number))


def is_approved(forge: GitHubForge, pr: PullInfo) -> bool:
    """A same-repo PR needs no approval; a fork's needs its current head pinned."""
    return not pr.fork or approved_sha(forge, pr) == pr.head_sha


def gate_body(pr: PullInfo, approved: str | None, by: str | None = None) -> str:
    if approved == pr.head_sha:
        who = f" by @{by}" if by else ""
        return (f"### aipc: approved\n\nCommit `{pr.head_sha}` from `{pr.head_repo}` was approved{who} and is "
                f"being deployed on the self-hosted runner. A new push to this pull request needs a new "
                f"`/aipc approve`.")
    before = f"\n\nThe approval of `{approved[:12]}` no longer applies: the head has moved." if approved else ""
    return (f"### aipc: waiting for a maintainer\n\nThis pull request comes from the fork `{pr.head_repo}`, so "
            f"the model deployment does not run on the self-hosted runner until a maintainer has read the "
            f"code at `{pr.head_sha}` (it runs there with this repository's token) and comments:\n\n"
            f"```\n/aipc approve {pr.head_sha[:12]}\n```{before}")


def post_gate(forge: GitHubForge, number: int) -> str:
    """On a fork's PR event: say once (edited in place) what is needed to deploy its head."""
    pr = forge.pull_info(number)
    if not pr.fork:
        return "same-repository pull request: deployed by the pull_request workflow, no approval needed"
    res = forge.upsert_comment(number, GATE_MARKER, gate_body(pr, approved_sha(forge, pr)))
    return f"fork {pr.head_repo} at {pr.head_sha[:12]}: approval comment {res.action}"


def approve(forge: GitHubForge, pr: PullInfo, sha: str | None, actor: str) -> str:
    """Pin the head commit the maintainer read. `sha` (a prefix) guards against a push that landed
    between reading and commenting: then the head is not what was read, and nothing is pinned."""
    if sha and not pr.head_sha.startswith(sha):
        raise BadInput(f"pull request #{pr.number}'s head is {pr.head_sha[:12]}, not {sha}: it changed after "
                       f"you read it", where="/aipc approve", hint="read the new commits and approve again")
    forge.pin(approval_ref(pr.number), pr.head_sha)
    forge.upsert_comment(pr.number, GATE_MARKER, gate_body(pr, pr.head_sha, by=actor))
    return pr.head_sha


@dataclass
class Plan:
    """What a permitted command deploys: the workflow's matrix and the options of `aipc deploy`."""

    command: Command
    models: list[str]
    sha: str = ""  # the commit to deploy; "" = the default branch
    for_pr: int | None = None  # contributor mode: the PR whose head is deployed and commented on
    notes: list[str] = field(default_factory=list)

    def outputs(self) -> dict[str, str]:
        c = self.command
        return {"verb": c.verb, "models": json.dumps(self.models), "sha": self.sha,
                "for-pr": str(self.for_pr or ""), "rerun-from": c.stage or "", "revert": c.repair or ""}


def plan_command(forge: GitHubForge, *, actor: str, text: str, number: int) -> Plan:
    """Check the actor, parse the comment and decide what to deploy; pins an approval."""
    role = check_permission(forge, actor)
    cmd = parse(text)
    pr = forge.pull_info(number)
    notes = [f"@{actor} ({role}): `{cmd.text()}` on #{number}"]
    bot = None if pr.fork else parse_bot_branch(pr.head_ref)
    if bot and bot[1] is None:  # the bot's own PR (aipc/<model>): deploy the default branch again
        if cmd.verb == "approve":
            raise BadInput("`/aipc approve` is for a contributor's pull request, not the bot's own",
                           hint="use `/aipc retry` here")
        return Plan(cmd, [bot[0]], notes=notes)
    if bot:  # the bot's PR for a contributor's PR (aipc/<model>-pr<N>): act on that contributor PR
        target, models = forge.pull_info(bot[1]), [bot[0]]
    else:
        target = pr
        files = forge.pull_files(number)
        removed = {p.split("/")[1] for p, status in files if status == "removed" and p.endswith("/aipc.yaml")
                   and p.count("/") == 2}
        models = [m for m in models_in([p for p, _ in files]) if m not in removed]
        if not models:
            raise BadInput(f"pull request #{number} changes no model under models/", where="/aipc")
    if target.fork:
        if cmd.verb == "approve":
            approve(forge, target, cmd.sha, actor)
            notes.append(f"approved {target.head_sha} from {target.head_repo}")
        elif not is_approved(forge, target):
            raise BadInput(f"pull request #{target.number} comes from the fork {target.head_repo} and its head "
                           f"{target.head_sha[:12]} is not approved", where=f"/aipc {cmd.verb}",
                           hint="a maintainer reads the code and comments `/aipc approve`")
    elif cmd.verb == "approve":
        notes.append("same-repository pull request: no approval needed; deploying its head")
    return Plan(cmd, models, sha=target.head_sha, for_pr=target.number, notes=notes)
