"""Contributor-PR mode: the bot answers a contributor's pull request instead of opening its own from main.

When someone opens a pull request that adds or changes a model, the deployment runs on the PR's
head commit and:

- the bot branch `aipc/<model>-pr<N>` starts from that head commit, so its commits (artifacts,
  repair patches, report) sit on top of the contributor's work;
- for a same-repository PR, the bot's own PR targets the contributor's head branch: merging it
  brings the bot's repairs into the contributor's PR. A fork's branch cannot be the base of a PR in
  this repository, so there the bot branch is only pushed (the comment says how to pull it);
- one comment on the contributor's PR, found by a hidden marker, carries the report and is edited
  in place on every run; an unchanged report writes nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bot.forge.github import CommentResult, GitHubForge, PullInfo, server_url
from bot.forge.publish import PublishResult, image_links, publish, publishing_repo
from bot.manifest import Manifest
from bot.report import pr_body, pr_title

COMMENT_BUDGET = 60000  # GitHub refuses comments over 65536 characters


def branch_for(model: str, number: int) -> str:
    return f"aipc/{model}-pr{number}"


def report_marker(model: str) -> str:
    return f"<!-- aipc:report {model} -->"


@dataclass
class ContributorResult:
    pull: PullInfo
    published: PublishResult | None
    comment: CommentResult


def publish_for_pr(number: int, *, deployment_dir: Path, model_dir: Path, manifest: dict,
                   say: Callable[[str], None] = lambda m: None, forge_options: dict | None = None,
                   remote: str = "origin") -> ContributorResult | None:
    """Publish a deployment of PR `number`'s head: bot branch on that head, bot PR into it, one comment."""
    repo = publishing_repo(model_dir, say)
    if repo is None:
        return None
    fg = GitHubForge(repo, **(forge_options or {}))
    fg.connect()
    pull = fg.pull_info(number)
    deployed = repo.rev("HEAD")
    if deployed != pull.head_sha:
        say(f"deployed {deployed and deployed[:12]}, but pull request #{number}'s head is now "
            f"{pull.head_sha[:12]}: the branch starts from what was deployed; the push that moved the head "
            f"starts its own run")
    model = Manifest.parse(manifest).model_or(Path(deployment_dir).name)
    branch = branch_for(model, number)
    published = publish(deployment_dir=deployment_dir, model_dir=model_dir, manifest=manifest, push=True,
                        pr=not pull.fork, say=say, forge_options=forge_options, base="HEAD", remote=remote,
                        branch=branch, pr_base=None if pull.fork else pull.head_ref)
    body = comment_body(manifest, fg, pull, published, branch, deployed or "", Path(deployment_dir))
    comment = fg.upsert_comment(number, report_marker(model), body)
    say(f"report comment on #{number} {comment.action}: {comment.url}")
    return ContributorResult(pull, published, comment)


def comment_body(manifest: dict, fg: GitHubForge, pull: PullInfo, published: PublishResult | None,
                 branch: str, deployed: str, deployment_dir: Path) -> str:
    """The report as a PR comment: where the bot's work is, then the same body as a bot PR."""

    sha = published.sha if published and published.sha else deployed
    prefix = f"deployments/{Manifest.parse(manifest).model_or(Path(deployment_dir).name)}"
    links = image_links(fg, sha, prefix, deployment_dir)  # links to the report files on the bot branch
    head = [f"## {pr_title(manifest)}", "",
            f"Deployed commit `{deployed[:12]}` of this pull request."]
    if published and published.stopped_by:
        head.append(f"The bot branch `{branch}` has a commit the bot did not write ({published.stopped_by[:12]}), "
                    f"so the bot left it alone.")
    elif not pull.fork and published and published.pr and published.pr.url:
        head.append(f"The bot's artifacts and repairs are on `{branch}`; merge {published.pr.url} "
                    f"into this pull request to take them.")
    else:
        url = f"{server_url(fg.base_url)}/{fg.slug}"
        head.append(f"The bot's artifacts and repairs are on `{branch}` in {fg.slug}; to take them into your "
                    f"fork's branch: `git pull {url} {branch}`.")
    if run := os.environ.get("GITHUB_RUN_ID"):
        head.append(f"Workflow run: {server_url(fg.base_url)}/{fg.slug}/actions/runs/{run}")
    report = pr_body(manifest, images=links["images"], links=links["links"])
    text = "\n".join(head) + "\n\n<details open><summary>Report</summary>\n\n" + report.strip() + "\n\n</details>\n"
    if len(text) > COMMENT_BUDGET:
        text = text[:COMMENT_BUDGET] + f"\n\n… (cut at {COMMENT_BUDGET} characters; the full report is " \
                                       f"{links['links'].get('HTML report', 'on the bot branch')})\n"
    return text
