"""Every level's repairs, one module per level, each exporting `REPAIRS` (listed in `bot.repair.catalogue`)."""
