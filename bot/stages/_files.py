"""Reading the model folder's data files and judging the golden outputs, safely.

Sample and calibration files are arrays, never pickles (`allow_pickle=False`: a pickle runs code
when loaded), and only from inside the model folder; a file that is not what it claims to be is
a `BadInput` naming it. Golden outputs that are not finite are said to be so, output by output,
with how much of each is NaN or infinite.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from bot.errors import BadInput
from bot.records import Check, Failure, FailureKind
from bot.spec.loader import SPEC_FILE, inside_folder


def load_npy(folder: Path, file: str, field: str) -> np.ndarray:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    where = f"{folder / SPEC_FILE} ({field})"
    path = inside_folder(folder, file, field, where)
    if not path.is_file():
        raise BadInput(f"sample file {file!r} not found", where=where)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise BadInput(f"{file} is not a .npy array ({str(e).splitlines()[0][:160]})", where=where) from None
    if not isinstance(arr, np.ndarray):
        raise BadInput(f"{file} holds several arrays (.npz); a sample file is one .npy array", where=where)
    return arr


def load_npz(folder: Path, file: str, field: str) -> dict[str, np.ndarray]:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    where = f"{folder / SPEC_FILE} ({field})"
    path = inside_folder(folder, file, field, where)
    if not path.is_file():
        raise BadInput(f"calibration file {file!r} not found", where=where)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, AttributeError, TypeError) as e:
        raise BadInput(f"{file} is not a .npz of named arrays ({str(e).splitlines()[0][:160]})", where=where) from None


def finite_checks(golden: list[dict[str, np.ndarray]]) -> tuple[list[Check], Failure | None]:
    """One check per output; a failure that names every non-finite output and how much of it is."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    checks, bad = [], []
    for name in golden[0]:
        arrays = [np.asarray(g[name]) for g in golden]
        total = sum(a.size for a in arrays)
        if not all(np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_ for a in arrays):
            checks.append(Check(f"{name} is finite", False, detail=f"dtype {arrays[0].dtype} is not numeric"))
            bad.append(f"{name!r} has dtype {arrays[0].dtype}, not a number")
            continue
        nan = sum(int(np.isnan(a).sum()) for a in arrays if np.issubdtype(a.dtype, np.inexact))
        inf = sum(int(np.isinf(a).sum()) for a in arrays if np.issubdtype(a.dtype, np.inexact))
        ok = nan == 0 and inf == 0
        checks.append(Check(f"{name} is finite", ok, value={"nan": nan, "inf": inf, "values": total}))
        if not ok:
            parts = [f"{n} NaN" for n in [nan] if n] + [f"{n} infinite" for n in [inf] if n]
            share = 100.0 * (nan + inf) / max(total, 1)
            bad.append(f"{name!r} has {' and '.join(parts)} of {total} values ({share:.3g}%)")
    if not bad:
        return checks, None
    msg = (f"the model's golden FP32 output is not finite: {'; '.join(bad)} over {len(golden)} sample(s); "
           f"check the forward for log/div/sqrt of values outside their domain, or the input range")
    return checks, Failure("load", FailureKind.BAD_INPUT, msg,
                           details={"nonfinite_outputs": [c.name.removesuffix(' is finite') for c in checks
                                                          if not c.passed]})
