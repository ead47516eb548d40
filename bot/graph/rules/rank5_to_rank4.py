"""rank5-to-rank4: Reshape → Transpose → Reshape through a rank-5/6 tensor, folded to the lowest rank.

Evidence (onnxruntime-qnn 2.7, HTP v75, float): a channel shuffle through rank 5
([N,g,C/g,H,W] → Transpose(0,2,1,3,4) → [N,C,H,W]) is placed as it is; a rank-6 chain (the
space-to-depth / window-partition shape [1,4,4,2,4,2], perm (0,1,3,5,2,4)) is refused at the
Reshape with `Failed to add node.`. QAIRT reports the same class as `QnnDsp <E> … has incorrect
Rank 6` / error 3110 `incorrect Rank 5` for FullyConnected, and 5-D chains around attention run
slower (onnxruntime-qnn#505). So the rule fires on every such chain whose middle rank is ≥ 5 and
can be lowered; for rank 5 the gain is speed and older EPs/SDK converters, for rank 6 placement.

How: drop size-1 axes of the middle shape, then merge runs of axes that the permutation keeps
adjacent and in order (they move as one block). The first Reshape goes to the merged shape, the
Transpose uses the merged permutation, and the last Reshape is unchanged: the data order is the
same, so the result is bit-exact. The channel shuffle becomes rank 3 ([g, C/g, H·W], perm 1,0,2).
"""

from __future__ import annotations

import numpy as np
from onnxscript.rewriter import pattern

from bot.graph.irutil import attr, static_shape
from bot.graph.rule import GraphRule

MIN_RANK = 5


def fold(shape: list[int], perm: list[int]) -> tuple[list[int], list[int]]:
    """Merged middle shape (in input order) and permutation, without size-1 axes."""
    keep = [i for i, d in enumerate(shape) if d != 1]
    if not keep:
        return [1], [0]
    rank_of = {a: r for r, a in enumerate(keep)}
    p = [rank_of[a] for a in perm if a in rank_of]
    s = [shape[a] for a in keep]
    groups = [[p[0]]]  # runs in output order that are consecutive in input order
    for a in p[1:]:
        (groups[-1].append(a) if a == groups[-1][-1] + 1 else groups.append([a]))
    by_input = sorted(groups, key=lambda g: g[0])
    merged = [int(np.prod([s[a] for a in g])) for g in by_input]
    index = {tuple(g): i for i, g in enumerate(by_input)}
    return merged, [index[tuple(g)] for g in groups]


def _target(op, x, s1, s2):
    return op.Reshape(op.Transpose(op.Reshape(x, s1, _outputs=["mid"]), _outputs=["t"]), s2)


def _check(ctx, x, s1, s2, mid, t, **_):
    shape = static_shape(mid)
    if shape is None or len(shape) < MIN_RANK or len(t.uses()) != 1 or len(mid.uses()) != 1:
        return False
    perm = attr(t.producer(), "perm") or list(reversed(range(len(shape))))
    merged, _ = fold(list(shape), list(perm))
    return len(merged) < len(shape)


def _replace(op, x, s1, s2, mid, t, **_):
    shape = list(static_shape(mid))
    perm = attr(t.producer(), "perm") or list(reversed(range(len(shape))))
    merged, p = fold(shape, list(perm))
    y = op.Reshape(x, op.Constant(value_ints=merged))
    if p != sorted(p):
        y = op.Transpose(y, perm=p)
    return op.Reshape(y, s2)


PATTERN = pattern.RewriteRule(_target, _replace, _check, name="rank5-to-rank4")


RULE = GraphRule(
    id="rank5-to-rank4",
    summary="Reshape→Transpose→Reshape through rank ≥5 folded to the lowest rank (HTP: rank 6 refused, rank 5 slow/refused by FC)",
    ops=("Reshape", "Transpose"),
    reasons=("rank", "Failed to add node"),
    patterns=(PATTERN,),
)
