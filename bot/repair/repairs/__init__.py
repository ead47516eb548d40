"""Every level's repairs; importing this package registers them all in the catalogue."""

from bot.repair.repairs import export, graph, quant, source  # noqa: F401
