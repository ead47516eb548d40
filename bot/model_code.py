"""Import a model's entry point and call it, turning every failure into `BadInput` with a place."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import numpy as np

from bot.adapters import is_adapter_ref
from bot.errors import BadInput
from bot.spec.loader import inside_folder


def _forget_shadowed(folder: Path) -> None:
    """Drop cached modules another model folder loaded under a name this folder's own files take.

    Two definitions in one process (the nightly, a benchmark over a zoo) each have their `model.py`;
    `from model import x` in the second would otherwise get the first's module from `sys.modules`."""
    own = {p.stem for p in folder.glob("*.py")} | {p.parent.name for p in folder.glob("*/__init__.py")}
    for name in own - set(sys.stdlib_module_names):
        cached = sys.modules.get(name)
        origin = getattr(cached, "__file__", None)
        if cached is not None and (origin is None or folder not in Path(origin).resolve().parents):
            del sys.modules[name]


@contextmanager
def _on_path(folder: Path):
    folder = folder.resolve()
    _forget_shadowed(folder)
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        try:
            sys.path.remove(str(folder))
        except ValueError:
            pass


def where_in(folder: Path, exc: BaseException) -> str:
    """`file:line` of the deepest frame inside the model folder, else the folder."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if str(folder) in f.filename]
    if frames:
        f = frames[-1]
        return f"{Path(f.filename).relative_to(folder)}:{f.lineno}"
    return str(folder)


def load_callable(folder: Path, ref: str, field: str) -> Callable[..., Any]:
    """`file.py:function` relative to the model folder, or an adapter's `name:function` (bot.adapters)."""

    if is_adapter_ref(ref):
        return _adapter_callable(folder, ref, field)
    file, _, func = ref.partition(":")
    path = inside_folder(folder, file, field)  # never import a file from outside the model folder
    if not path.exists():
        raise BadInput(f"file {file!r} not found", where=f"{folder / 'aipc.yaml'} ({field})")
    mod_name = f"aipc_model_{abs(hash((str(path), path.stat().st_mtime_ns)))}"
    try:
        with _on_path(folder):
            spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:  # a model's sys.exit() must not become the CLI's exit code
        raise BadInput(f"importing {file} raised {type(e).__name__}: {e}", where=where_in(folder, e)) from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise BadInput(f"{file} has no function {func!r}", where=f"{folder / 'aipc.yaml'} ({field})")
    return fn


def _adapter_callable(folder: Path, ref: str, field: str) -> Callable[..., Any]:
    name, _, func = ref.partition(":")
    fn = getattr(importlib.import_module(f"bot.adapters.{name}"), func, None)
    if not callable(fn) or func.startswith("_"):
        raise BadInput(f"the {name} adapter has no function {func!r}", where=f"{folder / 'aipc.yaml'} ({field})")
    return functools.partial(fn, Path(folder))


def call(folder: Path, fn: Callable[..., Any], *args, what: str) -> Any:
    try:
        with _on_path(folder):
            return fn(*args)
    except BadInput:
        raise
    except (Exception, SystemExit) as e:  # a model's sys.exit() must not become the CLI's exit code
        raise BadInput(f"{what} raised {type(e).__name__}: {e}", where=where_in(folder, e)) from None


def build_module(folder: Path, entry: str):
    import torch  # deferred: torch (~1 s) only where a model is built or run

    module = call(folder, load_callable(folder, entry, "entry"), what=f"the entry point {entry}")
    if not isinstance(module, torch.nn.Module):
        raise BadInput(f"the entry point {entry} returned {type(module).__name__}, expected a torch.nn.Module",
                       where=str(folder / "aipc.yaml"))
    return module.eval()


def flatten_outputs(out: Any, where: str | None = None) -> list[np.ndarray]:
    import torch  # deferred: torch (~1 s) only where a model is built or run

    if isinstance(out, torch.Tensor):
        return [out.detach().cpu().numpy()]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [a for o in out for a in flatten_outputs(o, where)]
    raise BadInput(f"the model's forward returned {type(out).__name__}; expected tensors (or tuples/dicts of tensors)",
                   where=where)
