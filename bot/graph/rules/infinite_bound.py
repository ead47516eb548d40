"""infinite-bound: `Max(x, -inf)` / `Min(x, +inf)` with a constant bound → `x` (evidence and the rewrite:
`bot.graph.infinite_bounds`, which the optimize stage applies to every graph without loading this catalogue).
"""

from __future__ import annotations

from bot.graph.infinite_bounds import drop_infinite_bounds as rewrite
from bot.graph.rule import GraphRule

RULE = GraphRule(
    id="infinite-bound",
    summary="Max(x, -inf) / Min(x, +inf) → x (the quantizer gives an infinite constant an infinite scale)",
    ops=("Max", "Min"),
    rewrite=rewrite,
)
