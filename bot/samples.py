"""Lists of named arrays (inputs, golden outputs, calibration) kept as one `.npz` each.

Keys are `<index>/<name>`, so a file says by itself how many samples it holds and in which order.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

Sample = dict[str, np.ndarray]


def save(path: Path, samples: list[Sample]) -> None:
    """Byte-for-byte deterministic (fixed zip timestamps), so equal samples hash equal downstream."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for i, s in enumerate(samples):
            for k, v in s.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(v), allow_pickle=False)
                zf.writestr(zipfile.ZipInfo(f"{i}/{k}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())


def load(path: Path) -> list[Sample]:
    with np.load(path) as z:
        out: dict[int, Sample] = {}
        for key in z.files:
            i, _, name = key.partition("/")
            out.setdefault(int(i), {})[name] = z[key]
    return [out[i] for i in sorted(out)]


NP_DTYPES = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "int64": np.int64,
             "uint8": np.uint8, "bool": np.bool_}


def random_inputs(inputs, n: int, seed: int) -> list[Sample]:
    """Seeded samples inside each input's declared value range."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        s = {}
        for spec in inputs:
            lo, hi = spec.range
            dt = NP_DTYPES[spec.dtype]
            if np.issubdtype(dt, np.floating):
                s[spec.name] = rng.uniform(lo, hi, size=spec.shape).astype(dt)
            elif dt == np.bool_:
                s[spec.name] = rng.integers(0, 2, size=spec.shape).astype(dt)
            else:
                s[spec.name] = rng.integers(int(lo), int(hi) + 1, size=spec.shape).astype(dt)
        out.append(s)
    return out
