"""PR comment commands (not CLI commands: those are `bot/cli.py`): `/aipc retry`, `/aipc rerun <stage>`, `/aipc revert <repair>`, `/aipc approve`.

A reviewer who disagrees with a repair reverts it by name; the bot re-deploys without it and
remembers the choice in the manifest (`reverted`), so later runs (nightly included) respect it.
`rerun <stage>` drops the stored results of that stage and the later ones, so they really run again
while the earlier stages are reused. `approve [sha]` lets a fork's pull request onto the self-hosted
runner at exactly the head commit a maintainer read (`bot.fork_gate`).
Who may command (write access) is checked against the API by `bot.fork_gate` before anything
runs on the self-hosted runner; this module parses and acts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.errors import BadInput

USAGE = "commands: `/aipc retry`, `/aipc rerun <stage>`, `/aipc revert <repair-id>`, `/aipc approve [sha]`"
VERBS = ("retry", "rerun", "revert", "approve")
# The stage order lives in bot/pipeline/workflow.yaml; read as data here so that parsing a command
# (on a GitHub-hosted runner, before the self-hosted one is touched) does not import the stages.
WORKFLOW_FILE = Path(__file__).parent / "pipeline" / "workflow.yaml"


def known_stages() -> list[str]:
    return list(yaml.safe_load(WORKFLOW_FILE.read_text())["stages"])


@dataclass(frozen=True)
class Command:
    verb: str  # retry | rerun | revert | approve
    repair: str | None = None  # revert
    stage: str | None = None  # rerun
    sha: str | None = None  # approve (optional prefix of the head commit the maintainer read)

    def text(self) -> str:
        return " ".join(x for x in ("/aipc", self.verb, self.repair or self.stage or self.sha) if x)


def parse(text: str) -> Command:
    line = next((l.strip() for l in text.splitlines() if l.strip().startswith("/aipc")), "")
    m = re.fullmatch(rf"/aipc\s+({'|'.join(VERBS)})(?:\s+([A-Za-z0-9][A-Za-z0-9_.-]*))?\s*", line)
    if not m:
        raise BadInput(f"not an aipc command: {line or text.strip()[:80]!r}", hint=USAGE)
    verb, arg = m.group(1), m.group(2)
    if verb == "revert":
        from bot.repair.catalogue import all_repairs  # deferred: the catalogue (and pydantic) only for /aipc revert

        if not arg:
            raise BadInput("`/aipc revert` needs the id of the repair to revert", hint=USAGE)
        if arg not in all_repairs():
            raise BadInput(f"no repair {arg!r} in the catalogue", hint=f"known: {', '.join(sorted(all_repairs()))}")
        return Command(verb, repair=arg)
    if verb == "rerun":
        stages = known_stages()
        if not arg:
            raise BadInput("`/aipc rerun` needs the stage to re-run from", hint=f"known stages: {', '.join(stages)}")
        if arg not in stages:
            raise BadInput(f"unknown stage {arg!r}", where="/aipc rerun", hint=f"known stages: {', '.join(stages)}")
        return Command(verb, stage=arg)
    if verb == "approve":
        if arg and not re.fullmatch(r"[0-9a-f]{7,40}", arg):
            raise BadInput(f"`/aipc approve` takes an optional commit sha (7 to 40 hex digits), not {arg!r}",
                           hint=USAGE)
        return Command(verb, sha=arg)
    if arg:
        raise BadInput("`/aipc retry` takes no argument", hint=USAGE)
    return Command(verb)


BOT_BRANCH = re.compile(r"aipc/(?P<model>[A-Za-z0-9_.-]+?)(?:-pr(?P<pr>\d+))?")


def parse_bot_branch(branch: str) -> tuple[str, int | None] | None:
    """`aipc/<model>` → (model, None); `aipc/<model>-pr<N>` (contributor mode) → (model, N); else None."""
    m = BOT_BRANCH.fullmatch(branch)
    return (m.group("model"), int(m.group("pr")) if m.group("pr") else None) if m else None


def model_of_branch(branch: str, root: Path) -> Path:
    parsed = parse_bot_branch(branch)
    if parsed is None:
        raise BadInput(f"branch {branch!r} is not a bot branch (aipc/<model>)")
    folder = root / "models" / parsed[0]
    if not (folder / "aipc.yaml").exists():
        raise BadInput(f"no model definition for branch {branch}", where=str(folder))
    return folder
