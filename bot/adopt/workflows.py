"""`aipc init --workflows`: the adopting repository's workflows, calling the bot's reusable workflow at
a pinned tag.

Why pinned: a team should know which bot deploys its models and move to a new one on purpose (read
CHANGELOG.md, change the tag), not whenever the bot's main branch moves. The templates
(`bot/adopt/templates/`) mirror this repository's own deploy, commands and nightly workflows, except
that the bot's code comes from `OWNER/NAME@tag` instead of the same checkout.
"""

from __future__ import annotations

from pathlib import Path

from bot import __version__
from bot.errors import BadInput

TEMPLATES = Path(__file__).parent / "templates"
WORKFLOWS = ("aipc-deploy", "aipc-commands", "aipc-nightly")
ACTIONLINT = """# actionlint settings: the bot's self-hosted runner label (`runs-on: [self-hosted, linux, x64, qairt]`).
self-hosted-runner:
  labels: [qairt]
"""


def render(name: str, *, bot_repository: str, tag: str) -> str:
    text = (TEMPLATES / f"{name}.yaml").read_text()
    return text.replace("@REPOSITORY@", bot_repository).replace("@TAG@", tag).replace("@VERSION@", __version__)


def repository_root(folder: Path) -> Path:
    """The git work tree that holds `folder` (workflows live at its top), else `folder` itself."""
    folder = Path(folder).resolve()
    for p in (folder, *folder.parents):
        if (p / ".git").exists():
            return p
    return folder


def write_workflows(folder: Path, *, bot_repository: str | None, tag: str, force: bool = False) -> list[Path]:
    if bot_repository is None:
        raise BadInput("could not tell which GitHub repository the bot lives in (this install is not a clone "
                       "of it and names none), so the workflows cannot point at it",
                       hint="pass --bot-repository OWNER/NAME or set AIPC_BOT_REPOSITORY")
    if "/" not in bot_repository or bot_repository.count("/") != 1:
        raise BadInput(f"--bot-repository {bot_repository!r}: expected OWNER/NAME")
    root = repository_root(folder)
    dest = root / ".github" / "workflows"
    paths = [dest / f"{name}.yml" for name in WORKFLOWS]
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise BadInput(f"{', '.join(str(p) for p in existing)} already exist(s)", hint="--force overwrites them")
    dest.mkdir(parents=True, exist_ok=True)
    for name, path in zip(WORKFLOWS, paths):
        path.write_text(render(name, bot_repository=bot_repository, tag=tag))
    lint = root / ".github" / "actionlint.yaml"
    if not lint.exists():
        lint.write_text(ACTIONLINT)
        paths.append(lint)
    return paths
