"""Source-level repairs: a unified diff against the model's own files.

The diff comes from a skill's known fix or from the LLM agent (as the `patch` parameter); it is
checked to stay inside the model folder and applied to a working copy, never to the original.
"""

from __future__ import annotations

from bot.records import FailureKind
from bot.repair.catalogue import Repair, register


def _source_patch(failure, state, ctx):
    patch = ctx.get("params", {}).get("patch")
    if not patch or patch in state.patches:
        return None
    from bot.repair.patches import check_patch

    check_patch(patch, ctx["model_dir"])
    new = state.copy()
    new.patches.append(patch)
    return new


register(Repair("source-patch", "source", tuple(FailureKind),
                "apply a unified diff to the model's own PyTorch files (in a working copy)", _source_patch))
