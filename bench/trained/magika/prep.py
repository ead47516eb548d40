"""A file → magika's features, as magika 1.0.3 reads them (`Magika._extract_features_from_seekable`):
at most 4096 bytes from each end, whitespace stripped, the first 1024 and the last 1024 bytes,
padded with token 256; int32."""

from __future__ import annotations

from pathlib import Path

import numpy as np

BEG, END, BLOCK, PAD = 1024, 1024, 4096, 256


def features(data: bytes) -> np.ndarray:
    n = min(BLOCK, len(data))
    beg = list(data[:n].lstrip()[:BEG])
    beg += [PAD] * (BEG - len(beg))
    tail = data[len(data) - n:].rstrip()
    end = list(tail[len(tail) - END:] if len(tail) > END else tail)
    end = [PAD] * (END - len(end)) + end
    return np.array(beg + end, np.int32)[None]


def preprocess(path: Path) -> dict[str, np.ndarray]:
    return {"bytes": features(Path(path).read_bytes())}
