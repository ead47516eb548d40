"""Ranking preservation for embeddings: nearest neighbours unchanged, similarities in the same order."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from bot.spec.schema import RankingMetric
from bot.task.records import Figure, MetricResult


def similarity(emb: np.ndarray, how: str) -> np.ndarray:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    if how == "cosine":
        n = np.linalg.norm(emb, axis=1, keepdims=True)
        emb = emb / np.where(n > 0, n, 1)
    if how == "euclidean":
        sq = np.sum(emb**2, axis=1)
        return -np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * emb @ emb.T, 0))
    return emb @ emb.T


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (what Spearman's rho needs)."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x), dtype=np.float64)
    uniq, inv = np.unique(x, return_inverse=True)
    if len(uniq) < len(x):
        r = (np.bincount(inv, weights=r) / np.bincount(inv))[inv]
    return r


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = np.sqrt(np.sum(ra**2) * np.sum(rb**2))
    return float(np.sum(ra * rb) / den) if den > 0 else float("nan")


def ranking(m: RankingMetric, fp32: list, deployed: list, labels: list | None, folder) -> MetricResult:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    if len(fp32) < 3:
        raise ValueError(f"needs at least 3 validation samples to compare neighbours, got {len(fp32)}")
    f = np.stack([np.asarray(a, dtype=np.float64).ravel() for a in fp32])
    d = np.stack([np.asarray(a, dtype=np.float64).ravel() for a in deployed])
    sf, sd = similarity(f, m.similarity), similarity(d, m.similarity)
    np.fill_diagonal(sf, -np.inf), np.fill_diagonal(sd, -np.inf)
    nf, nd = np.argmax(sf, axis=1), np.argmax(sd, axis=1)
    iu = np.triu_indices(len(f), k=1)
    figs = [Figure(f"nearest neighbour unchanged ({len(f)} samples)", float(np.mean(nf == nd)), threshold=m.min),
            Figure("Spearman of pairwise similarities", spearman(sf[iu], sd[iu]), threshold=m.spearman_min)]
    idx = [i for i, lab in enumerate(labels or []) if lab is not None]
    if idx:
        hit = lambda nn: float(np.mean([labels[int(nn[i])] == labels[i] for i in idx]))
        figs.append(Figure("nearest neighbour has the same label", hit(nd), fp32=hit(nf)))
    return MetricResult(m.label, m.kind, figs, len(f), [i for i in range(len(f)) if nf[i] != nd[i]])
