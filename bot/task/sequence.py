"""Exact sequence / string match (after a CTC or greedy decode) and the character error rate."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from bot.spec.schema import SequenceMetric
from bot.task.answers import plain
from bot.task.records import Figure, MetricResult


def edit_distance(a, b) -> int:
    """Levenshtein distance between two sequences (strings or lists). Answers are short (a plate,
    a sentence), so the textbook O(len·len) row update is enough and needs no dependency."""
    a, b = list(a), list(b)
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def _seq(x):
    x = plain(x)
    return x if isinstance(x, (str, list)) else [x]


def error_rate(refs: list, hyps: list) -> float:
    """Edits over reference length, summed over the samples (the usual CER/WER definition)."""
    edits = sum(edit_distance(r, h) for r, h in zip(refs, hyps))
    return edits / max(1, sum(len(r) for r in refs))


def sequence(m: SequenceMetric, fp32: list, deployed: list, labels: list | None, folder) -> MetricResult:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    f, d = [_seq(a) for a in fp32], [_seq(a) for a in deployed]
    same = [a == b for a, b in zip(f, d)]
    figs = [Figure("exact match with FP32", float(np.mean(same)), threshold=m.min),
            Figure("error rate vs FP32", error_rate(f, d), threshold=m.cer_max, op="≤")]
    idx = [i for i, lab in enumerate(labels or []) if lab is not None]
    if idx:
        lab = {i: _seq(labels[i]) for i in idx}
        figs.append(Figure(f"exact match vs labels ({len(idx)})", float(np.mean([d[i] == lab[i] for i in idx])),
                           fp32=float(np.mean([f[i] == lab[i] for i in idx])), threshold=m.label_drop_max,
                           op="≤", judged="drop"))
        figs.append(Figure("error rate vs labels", error_rate([lab[i] for i in idx], [d[i] for i in idx]),
                           fp32=error_rate([lab[i] for i in idx], [f[i] for i in idx]), op="≤"))
    return MetricResult(m.label, m.kind, figs, len(f), [i for i, s in enumerate(same) if not s])
