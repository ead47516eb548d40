"""What steers a run of the pipeline besides the definition: stage options and source patches.

A repair never edits artifacts: it returns a new `RepairState`, and the pipeline re-runs from the
first stage whose content key those options change. The options are the stages' own typed models
(`Stage.Options`): a repair names a knob by its field, and a misspelt knob or a wrong value is
refused where it is written, not found later as a stage that silently ignored it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from bot.errors import BadInput
from bot.stage_options import BY_STAGE, StageOptions, parse_options, validated

O = TypeVar("O", bound=StageOptions)


class RepairState:
    """Everything a run of the pipeline is steered by, besides the definition itself."""

    def __init__(self, options: Mapping[str, StageOptions | Mapping[str, Any]] | None = None,
                 patches: list[str] | None = None):
        self.stage_options: dict[str, StageOptions] = parse_options(options)  # stage → its typed knobs
        self.patches: list[str] = list(patches or [])  # unified diffs against the model folder

    @property
    def options(self) -> dict[str, dict[str, Any]]:
        """The options' content, stage → the knobs set (a fresh copy: change them with the methods below).
        This is what the manifest's `repair_state` holds and what the stages' keys hash."""
        return {stage: o.content() for stage, o in self.stage_options.items()}

    def content(self) -> dict[str, Any]:
        return {"options": self.options, "patches": list(self.patches)}

    @classmethod
    def from_content(cls, content: Mapping[str, Any] | None) -> "RepairState":
        """From `content()`, or a manifest's `repair_state` (which counts the patches instead of holding them)."""
        content = content or {}
        patches = content.get("patches")
        return cls(content.get("options") or {}, patches if isinstance(patches, list) else [])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RepairState) and self.content() == other.content()

    def __repr__(self) -> str:
        return f"RepairState(options={self.options!r}, patches=<{len(self.patches)}>)"

    def copy(self) -> "RepairState":
        return RepairState(dict(self.stage_options), self.patches)  # the options are frozen: shared safely

    def opts(self, options: type[O]) -> O:
        """The knobs set on the stage `options` belongs to (its defaults when none are)."""
        return self.stage_options.get(options.stage) or options()

    def with_options(self, options: type[StageOptions], **knobs: Any) -> "RepairState":
        """A copy with these knobs of that stage set (validated by the stage's model)."""
        return self._replaced(options, {**self.opts(options).content(), **knobs})

    def without(self, options: type[StageOptions], *knobs: str) -> "RepairState":
        """A copy with these knobs unset again (back to the definition's choice)."""
        unknown = [k for k in knobs if k not in options.model_fields]
        if unknown:
            raise BadInput(f"{options.stage}: no knob(s) {unknown}; knobs: {', '.join(options.model_fields)}")
        return self._replaced(options, {k: v for k, v in self.opts(options).content().items() if k not in knobs})

    def appended(self, options: type[StageOptions], knob: str, items: list) -> "RepairState":
        """A copy with `items` added to a list knob, each once, in order."""
        cur = list(self.opts(options).content().get(knob, getattr(options(), knob)))
        return self.with_options(options, **{knob: cur + [i for i in items if i not in cur]})

    def with_option(self, stage: str, key: str, value: Any) -> "RepairState":
        """By name, for a caller holding strings (the agent's `set_option` tool)."""
        if stage not in BY_STAGE:
            raise BadInput(f"options: no stage {stage!r} takes options; those that do: {', '.join(BY_STAGE)}")
        return self.with_options(BY_STAGE[stage], **{key: value})

    def _replaced(self, options: type[StageOptions], content: dict[str, Any]) -> "RepairState":
        new = self.copy()
        new.stage_options[options.stage] = validated(options, content)
        return new
