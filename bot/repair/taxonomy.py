"""The failure taxonomy: refine a stage's failure into the class the planner matches on.

Stages report what they saw (the compat stage says "rejected"); the text of the reasons and
logs often says more precisely why — an int64 tensor, a dynamic dimension, a graph that would
not finalize. One table of (pattern → class), shared by every backend's error text.
"""

from __future__ import annotations

import dataclasses
import re

from bot.records import Failure, FailureKind

PATTERNS: list[tuple[str, FailureKind]] = [
    (r"Dynamic tensor is not supported|dynamic dimensions? remain|dim_param", FailureKind.DYNAMIC_SHAPE),
    (r"\bint64\b|INT64|Type not supported|data type .* not supported", FailureKind.UNSUPPORTED_DTYPE),
    (r"Failed to finalize|finalize QNN graph|Graph Finalize failure|graph prepare failed|could not create op",
     FailureKind.COMPILE_ERROR),
]


def classify(failure: Failure | None) -> Failure:
    """Return the failure with its kind refined where the text is specific; never coarsens it.

    A run that failed without a failure record (which the runner no longer produces) is classed
    as a tool error that says so, rather than crashing the loop."""
    if failure is None:
        return Failure("unknown", FailureKind.TOOL_ERROR, "a stage failed without saying why")
    if failure.kind not in (FailureKind.OP_REJECTED, FailureKind.TOOL_ERROR, FailureKind.COMPILE_ERROR):
        return failure
    text = "\n".join([failure.message, failure.log] + [n.reason for n in failure.nodes])
    for pattern, kind in PATTERNS:
        if re.search(pattern, text):
            if failure.kind == FailureKind.OP_REJECTED and kind == FailureKind.COMPILE_ERROR:
                continue  # a rejection names nodes; keep it specific
            return dataclasses.replace(failure, kind=kind, details={**failure.details, "refined_from": failure.kind.value})
    return failure
