"""Lists of named arrays (inputs, golden outputs, calibration) kept as one `.npz` each.

Keys are `<index>/<name>`, so a file says by itself how many samples it holds and in which order.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

Sample = dict[str, "np.ndarray"]


def save(path: Path, samples: list[Sample]) -> None:
    """Byte-for-byte deterministic (fixed zip timestamps), so equal samples hash equal downstream."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for i, s in enumerate(samples):
            for k, v in s.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(v), allow_pickle=False)
                zf.writestr(zipfile.ZipInfo(f"{i}/{k}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())


def load(path: Path) -> list[Sample]:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    with np.load(path) as z:
        out: dict[int, Sample] = {}
        for key in z.files:
            i, _, name = key.partition("/")
            out.setdefault(int(i), {})[name] = z[key]
    return [out[i] for i in sorted(out)]


# the definition's dtype names → numpy's names for them (`arr.astype` and `np.dtype` take these strings)
NP_DTYPES = {"float32": "float32", "float16": "float16", "int32": "int32", "int64": "int64", "uint8": "uint8",
             "bool": "bool"}


def random_inputs(inputs, n: int, seed: int) -> list[Sample]:
    """Seeded samples inside each input's declared value range."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        s = {}
        for spec in inputs:
            lo, hi = spec.range
            dt = np.dtype(NP_DTYPES[spec.dtype])
            if np.issubdtype(dt, np.floating):
                s[spec.name] = rng.uniform(lo, hi, size=spec.shape).astype(dt)
            elif dt == np.bool_:
                s[spec.name] = rng.integers(0, 2, size=spec.shape).astype(dt)
            else:
                s[spec.name] = rng.integers(int(lo), int(hi) + 1, size=spec.shape).astype(dt)
        out.append(s)
    return out
