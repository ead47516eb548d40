"""Adapters: model families the bot knows how to cut into deployable graphs itself.

A definition names an adapter instead of hand-written entry points; its references look like
`transformers:step` (no `.py`, so they can never name a file of the model folder), and
`bot.model_code.load_callable` resolves them here, passing the model folder.
"""

from __future__ import annotations

ADAPTERS = ("transformers",)


def is_adapter_ref(ref: str | None) -> bool:
    return bool(ref) and ref.partition(":")[0] in ADAPTERS
