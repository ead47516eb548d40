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
Set `AIPC_FORGE=off` to skip publishing entirely (e.g. in tests that deploy inside a checkout); the deploy
has written the report and the patches already (`bot.report.write_files`): a forge only delivers.
"""

from __future__ import annotations

from bot.forge.base import Forge
from bot.forge.publish import PublishResult, publish
from bot.forge.registry import REGISTRY, get_forge

__all__ = ["REGISTRY", "Forge", "PublishResult", "publish", "get_forge"]
