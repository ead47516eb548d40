"""PR comment commands: `/aipc retry` and `/aipc revert <repair>`.

A reviewer who disagrees with a repair reverts it by name; the bot re-deploys without it and
remembers the choice in the manifest (`reverted`), so later runs (nightly included) respect it.
Only the workflow decides who may command (write access); this module only parses and acts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bot.errors import BadInput

USAGE = "commands: `/aipc retry`, `/aipc revert <repair-id>`"


@dataclass(frozen=True)
class Command:
    verb: str  # retry | revert
    repair: str | None = None


def parse(text: str) -> Command:
    line = next((l.strip() for l in text.splitlines() if l.strip().startswith("/aipc")), "")
    m = re.fullmatch(r"/aipc\s+(retry|revert)(?:\s+([a-z0-9][a-z0-9-]*))?\s*", line)
    if not m:
        raise BadInput(f"not an aipc command: {line or text.strip()[:80]!r}", hint=USAGE)
    verb, repair = m.group(1), m.group(2)
    if verb == "revert":
        from bot.repair.catalogue import all_repairs

        if not repair:
            raise BadInput("`/aipc revert` needs the id of the repair to revert", hint=USAGE)
        if repair not in all_repairs():
            raise BadInput(f"no repair {repair!r} in the catalogue", hint=f"known: {', '.join(sorted(all_repairs()))}")
    elif repair:
        raise BadInput("`/aipc retry` takes no argument", hint=USAGE)
    return Command(verb, repair)


def model_of_branch(branch: str, root: Path) -> Path:
    if not branch.startswith("aipc/"):
        raise BadInput(f"branch {branch!r} is not a bot branch (aipc/<model>)")
    folder = root / "models" / branch.removeprefix("aipc/")
    if not (folder / "aipc.yaml").exists():
        raise BadInput(f"no model definition for branch {branch}", where=str(folder))
    return folder


def execute(cmd: Command, model: Path, *, out_dir: Path | None = None, push: bool = False, pr: bool = False,
            events=None, say: Callable[[str], None] = lambda m: None):
    from bot.deploy import deploy

    exclude = [cmd.repair] if cmd.verb == "revert" else []
    say(f"/aipc {cmd.verb}{' ' + cmd.repair if cmd.repair else ''}: re-deploying {model}")
    return deploy(model, out_dir=out_dir, push=push, pr=pr, events=events, say=say, exclude=exclude)
