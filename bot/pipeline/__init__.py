"""Running a workflow of stages with content-keyed caching, and the manifest that records it."""

from bot.pipeline.runner import Pipeline, RunOutcome

__all__ = ["Pipeline", "RunOutcome"]
