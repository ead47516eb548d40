"""Every level's repairs; importing this package registers them all in the catalogue."""

from bot.repair.repairs import export, graph, quant, source  # noqa: F401
from bot.repair.repairs import aimet  # noqa: F401,E402  after quant: the loop tries a level's repairs in registration order
