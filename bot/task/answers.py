"""From raw outputs to the task's answer, the same way for FP32 and deployed outputs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import numpy as np

from bot.errors import BadInput
from bot.model_code import call, load_callable
from bot.plain_json import jsonable  # also packaged beside run.py; re-exported for the task modules

__all__ = ["jsonable", "pick", "plain", "postprocessor"]


def postprocessor(folder: Path, ref: str | None, field: str = "task.postprocess") -> Callable[[dict], Any]:
    """The definition's postprocess, or the default: the only output, else the dict of outputs."""
    if ref is None:
        return lambda outputs: next(iter(outputs.values())) if len(outputs) == 1 else dict(outputs)
    fn = load_callable(folder, ref, field)
    return lambda outputs: call(folder, fn, dict(outputs), what=f"the postprocess {ref}")


def pick(answer: Any, key: str | None, metric: str) -> Any:
    """One field of a dict-valued answer (`key:` in the definition)."""
    if key is None:
        return answer
    if not isinstance(answer, dict) or key not in answer:
        have = sorted(answer) if isinstance(answer, dict) else type(answer).__name__
        raise BadInput(f"task metric {metric!r}: key {key!r} is not in the answer (answer has {have})",
                       where="aipc.yaml (task.metrics)")
    return answer[key]


def plain(x: Any) -> Any:
    """A comparable form: arrays and numpy scalars become Python lists and numbers."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    if isinstance(x, (np.ndarray, np.generic)):
        return x.tolist()
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    return x
