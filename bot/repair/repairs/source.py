"""Source-level repairs: a unified diff against the model's own files.

Two sources: the skills' known fixes (`skills/<skill>/patches/*.diff`, each headed by
`# aipc-answers: <Op> ...` naming the refused ops it answers), which the rule planner tries for
free; and any diff the LLM agent proposes (the `patch` parameter). Either is checked to stay
inside the model folder and applied to a working copy, never to the original.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from bot.errors import BadInput
from bot.records import FailureKind
from bot.repair.base import Repair
from bot.repair.patches import check_patch
from bot.repair.patches import working_copy
from bot.skills import SKILLS_DIR

ANSWERS = re.compile(r"^#\s*aipc-answers:\s*(.+)$", re.M)


def known_patches() -> list[tuple[str, set[str], str]]:
    """(patch file, ops it answers, diff text) for every skill patch."""

    out = []
    for p in sorted(SKILLS_DIR.glob("*/patches/*.diff")):
        text = p.read_text()
        m = ANSWERS.search(text)
        if m:
            out.append((str(p.relative_to(SKILLS_DIR)), set(m.group(1).split()), text))
    return out


def _applies(model_dir: Path, patches: list[str]) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            working_copy(model_dir, patches, Path(tmp) / "copy")
            return True
        except BadInput:
            return False


def _skill_patch(failure, state, ctx):
    refused = {n.op for n in failure.nodes}
    for _, ops, diff in known_patches():
        if diff in state.patches or not (ops & refused):
            continue
        if _applies(ctx["model_dir"], state.patches + [diff]):
            new = state.copy()
            new.patches.append(diff)
            return new
    return None


def _source_patch(failure, state, ctx):
    patch = ctx.get("params", {}).get("patch")
    if not patch or patch in state.patches:
        return None

    check_patch(patch, ctx["model_dir"])
    new = state.copy()
    new.patches.append(patch)
    return new


REPAIRS: tuple[Repair, ...] = (
    Repair("skill-patch", "source", (FailureKind.OP_REJECTED, FailureKind.UNSUPPORTED_DTYPE,
                                    FailureKind.COMPILE_ERROR),
           "apply a skill's known source fix for the refused op (when it applies to this model's files)",
           _skill_patch),
    Repair("source-patch", "source", tuple(FailureKind),
           "apply a unified diff to the model's own PyTorch files (in a working copy)", _source_patch),
)
