"""The data-file source of samples: files in the model folder → input arrays through `preprocess`.

Beside the random, `.npy` and generator sources (`bot.samples`, the load stage): the definition's
`data:` section names globs for calibration and validation, and one `preprocess(path)` turns a file
into `{input name: array}`. The same function runs again in the packaged `run.py`, so what was
validated is what an app feeds. A glob that matches nothing may be filled by `data.make(folder, seed)`
(offline, from a seed); nothing is ever downloaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from bot import samples as S
from bot.errors import BadInput
from bot.paths import glob_inside, inside, relative
from bot.spec.schema import DataSpec, InputSpec
from bot.model_code import call, load_callable


@dataclass
class DataFiles:
    """Which files feed calibration and validation, named relative to the model folder."""

    calibration: list[str] = field(default_factory=list)
    validation: list[str] = field(default_factory=list)
    made: bool = False  # whether `data.make` ran to produce them


def _where(folder: Path, fld: str) -> str:
    return f"{folder / 'aipc.yaml'} (data.{fld})"


def _match(folder: Path, globs: list[str], fld: str) -> tuple[list[str], list[str]]:
    """(files, globs that matched nothing)."""
    files, empty = [], []
    for k, g in enumerate(globs):
        hit = [relative(folder, p) for p in glob_inside(folder, g, _where(folder, f"{fld}[{k}]"))]
        files += [h for h in hit if h not in files]
        if not hit:
            empty.append(g)
    return files, empty


def resolve(data: DataSpec, folder: Path) -> DataFiles:
    """Match the globs (running `data.make` once if one matches nothing) and keep the sets apart."""
    made = False
    (cal, cal_empty), (val, val_empty) = _match(folder, data.calibration, "calibration"), \
        _match(folder, data.validation, "validation")
    if (cal_empty or val_empty) and data.make:
        fn = load_callable(folder, data.make, "data.make")
        call(folder, fn, Path(folder), data.seed, what=f"the data maker {data.make}")
        made = True
        (cal, cal_empty), (val, val_empty) = _match(folder, data.calibration, "calibration"), \
            _match(folder, data.validation, "validation")
    for fld, empty in (("calibration", cal_empty), ("validation", val_empty)):
        if empty:
            hint = f"{data.make} ran and did not write them" if data.make else "add the files or a 'data.make' script"
            raise BadInput(f"no files match {', '.join(map(repr, empty))}", where=_where(folder, fld), hint=hint)
    both = sorted(set(cal) & set(val))
    if both:
        raise BadInput(f"{len(both)} file(s) are in both the calibration and the validation set "
                       f"({', '.join(both[:5])}{' …' if len(both) > 5 else ''}); validation must be kept apart "
                       "from what the quantizer calibrated on", where=_where(folder, "validation"))
    return DataFiles(cal, val, made)


def read(data: DataSpec, folder: Path, files: list[str], inputs: list[InputSpec], fld: str) -> list[S.Sample]:
    """One sample per file through `preprocess`, checked against the declared inputs."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    fn = load_callable(folder, data.preprocess, "data.preprocess")
    declared = {i.name: i for i in inputs}
    out = []
    for rel in files:
        got = call(folder, fn, inside(folder, rel, _where(folder, fld)), what=f"the preprocess {data.preprocess} on {rel}")
        if not isinstance(got, dict):
            raise BadInput(f"the preprocess {data.preprocess} returned {type(got).__name__} for {rel}; expected "
                           f"{{input name: array}} with {sorted(declared)}", where=_where(folder, "preprocess"))
        if sorted(got) != sorted(declared):
            raise BadInput(f"the preprocess {data.preprocess} returned inputs {sorted(got)} for {rel}; the "
                           f"definition declares {sorted(declared)}", where=_where(folder, "preprocess"))
        sample = {}
        for name, spec in declared.items():
            arr = np.asarray(got[name])
            if list(arr.shape) != spec.shape:
                raise BadInput(f"the preprocess {data.preprocess} made {name!r} of shape {list(arr.shape)} from "
                               f"{rel}; the input declares {spec.shape}", where=_where(folder, "preprocess"))
            sample[name] = arr.astype(S.NP_DTYPES[spec.dtype])
        out.append(sample)
    return out


def labels(data: DataSpec, folder: Path, files: list[str]) -> list | None:
    """Each validation file's label from `data.labels` (keyed by path in the folder or by file name),
    None for a file without one; None overall when the definition gives no labels."""
    if not data.labels:
        return None
    path = inside(folder, data.labels, _where(folder, "labels"))
    if not path.is_file():
        raise BadInput(f"labels file {data.labels!r} not found", where=_where(folder, "labels"))
    try:
        table = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadInput(f"labels file {data.labels} is not valid JSON: {e}", where=_where(folder, "labels")) from None
    if not isinstance(table, dict):
        raise BadInput(f"labels file {data.labels} must hold an object {{file name: label}}",
                       where=_where(folder, "labels"))
    found = [table.get(rel, table.get(Path(rel).name)) for rel in files]
    if all(v is None for v in found):
        raise BadInput(f"labels file {data.labels} has no label for any of the {len(files)} validation files "
                       f"(keys are file names, e.g. {Path(files[0]).name!r})" if files else
                       f"labels file {data.labels}: no validation files to label", where=_where(folder, "labels"))
    return found
