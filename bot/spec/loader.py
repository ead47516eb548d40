"""Read `aipc.yaml` and turn every problem into a `BadInput` that names the field path."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from bot.errors import BadInput
from bot.spec.schema import Spec

SPEC_FILE = "aipc.yaml"


def field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def load_spec(model_dir: str | Path) -> tuple[Spec, Path]:
    """Return the validated definition and the model folder it lives in."""
    p = Path(model_dir)
    path = p / SPEC_FILE if p.is_dir() else p
    if not path.exists():
        raise BadInput(f"no model definition found (expected {SPEC_FILE})", where=str(path))
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise BadInput(f"malformed YAML: {getattr(e, 'problem', e)}", where=where) from None
    if not isinstance(raw, dict):
        raise BadInput("expected a mapping of fields at the top level", where=str(path))
    raw.setdefault("name", path.parent.name.lower())
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as e:
        msgs = [f"{field_path(err['loc'])}: {err['msg'].removeprefix('Value error, ')}" for err in e.errors()]
        raise BadInput("; ".join(msgs), where=str(path)) from None
    folder = path.parent.resolve()
    sources = [spec, *spec.graphs] if spec.graphs else [spec]
    refs = [s.onnx if s.onnx else s.entry.split(":")[0] for s in sources if s.onnx or s.entry]
    for ref in refs:
        if not (folder / ref).exists():
            raise BadInput(f"file {ref!r} not found in the model folder", where=f"{path}")
    return spec, folder
