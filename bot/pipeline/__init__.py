"""Running a workflow of stages with content-keyed caching, and the manifest that records it."""

from __future__ import annotations

__all__ = ["Pipeline", "RunOutcome"]


def __getattr__(name: str):
    if name in __all__:
        # deferred: the runner imports every stage (numpy, pydantic, the backends); `bot.pipeline.limits`,
        # which every CLI command arms, and `bot.pipeline.lock` must stay light (`aipc changed` is git only)
        from bot.pipeline import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'bot.pipeline' has no attribute {name!r}")
