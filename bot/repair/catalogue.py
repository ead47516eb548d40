"""The repair catalogue: every fix the bot can apply, listed explicitly, level by level.

Each level's module (`bot/repair/repairs/`) exports a tuple `REPAIRS`; the catalogue is their
concatenation in this order (no registration by import side effect). The loop tries a level's
repairs in catalogue order, so AIMET's come after the onnxruntime quantization repairs.
"""

from __future__ import annotations

from bot.repair.base import Repair
from bot.repair.repairs import aimet, export, graph, quant, source

CATALOGUE: dict[str, Repair] = {r.id: r for r in (*export.REPAIRS, *graph.REPAIRS, *quant.REPAIRS,
                                                   *source.REPAIRS, *aimet.REPAIRS)}


def all_repairs() -> dict[str, Repair]:
    """The whole catalogue, by id, in order."""
    return CATALOGUE
