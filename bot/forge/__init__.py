"""Forges: where the bot's branch and pull request go (GitHub via PyGithub, or a local forge).

`publish` is the one entry point `bot.deploy` calls after a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable


def publish(*, deployment_dir: Path, model_dir: Path, manifest: dict, push: bool, pr: bool,
            say: Callable[[str], None] = lambda m: None):
    """Commit the deployment to `aipc/<model>` and open or update its pull request.

    Placeholder until the forge lands: does nothing.
    """
    return None
