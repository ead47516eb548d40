"""The repair catalogue: every fix the bot can apply, listed explicitly, level by level.

Each level's module (`bot/repair/repairs/`) exports a tuple `REPAIRS`; the catalogue is their
concatenation in this order (no registration by import side effect). The loop tries a level's
repairs in catalogue order, so AIMET's come after the onnxruntime quantization repairs.
"""

from __future__ import annotations

from functools import cache

from bot.repair.base import Repair


@cache
def all_repairs() -> dict[str, Repair]:
    """The whole catalogue, by id, in order."""
    # deferred: the graph repairs import every graph rule (onnxscript, ~1 s); a cached deploy never asks
    from bot.repair.repairs import aimet, export, graph, quant, source

    return {r.id: r for r in (*export.REPAIRS, *graph.REPAIRS, *quant.REPAIRS, *source.REPAIRS, *aimet.REPAIRS)}
