"""Label, top-k and per-frame decision agreement: the classifier-shaped task metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from bot.spec.schema import DecisionsMetric, LabelMetric, TopkMetric
from bot.task.answers import plain
from bot.task.records import Figure, MetricResult


def _labelled(labels: list | None) -> list[int]:
    return [i for i, lab in enumerate(labels or []) if lab is not None]


def _accuracy_figure(name: str, fp32_hits: list[bool], dep_hits: list[bool], drop_max: float | None) -> Figure:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    return Figure(name, deployed=float(np.mean(dep_hits)), fp32=float(np.mean(fp32_hits)),
                  threshold=drop_max, op="≤", judged="drop")


def label(m: LabelMetric, fp32: list, deployed: list, labels: list | None, folder) -> MetricResult:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    same = [plain(f) == plain(d) for f, d in zip(fp32, deployed)]
    figs = [Figure("agreement with FP32", float(np.mean(same)), threshold=m.min)]
    idx = _labelled(labels)
    if idx:
        figs.append(_accuracy_figure(f"accuracy vs labels ({len(idx)})",
                                     [plain(fp32[i]) == plain(labels[i]) for i in idx],
                                     [plain(deployed[i]) == plain(labels[i]) for i in idx], m.label_drop_max))
    return MetricResult(m.label, m.kind, figs, len(same), [i for i, s in enumerate(same) if not s])


def _scores(a) -> np.ndarray:
    """A score vector: the last axis holds the classes (a leading batch of 1 is dropped)."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    v = np.asarray(a, dtype=np.float64)
    return v.reshape(-1, v.shape[-1])[0] if v.ndim > 1 else v


def topk(m: TopkMetric, fp32: list, deployed: list, labels: list | None, folder) -> MetricResult:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    f, d = [_scores(a) for a in fp32], [_scores(a) for a in deployed]
    k = min(m.k, f[0].size)
    top = [set(np.argsort(-x, kind="stable")[:k].tolist()) for x in d]
    hits = [int(np.argmax(a)) in t for a, t in zip(f, top)]
    figs = [Figure(f"FP32 top-1 within deployed top-{k}", float(np.mean(hits)), threshold=m.min),
            Figure("top-1 agreement with FP32", float(np.mean([np.argmax(a) == np.argmax(b) for a, b in zip(f, d)])))]
    idx = [i for i in _labelled(labels) if isinstance(labels[i], int) and not isinstance(labels[i], bool)]
    if idx:
        lab = {i: int(labels[i]) for i in idx}
        figs.append(_accuracy_figure(f"top-1 accuracy vs labels ({len(idx)})", [int(np.argmax(f[i])) == lab[i] for i in idx],
                                     [int(np.argmax(d[i])) == lab[i] for i in idx], m.label_drop_max))
        figs.append(_accuracy_figure(f"top-{k} accuracy vs labels ({len(idx)})",
                                     [lab[i] in set(np.argsort(-f[i], kind="stable")[:k].tolist()) for i in idx],
                                     [lab[i] in top[i] for i in idx], None))
    return MetricResult(m.label, m.kind, figs, len(f), [i for i, h in enumerate(hits) if not h])


def decisions(m: DecisionsMetric, fp32: list, deployed: list, labels: list | None, folder) -> MetricResult:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    f = [np.asarray(a, dtype=np.float64).ravel() >= m.threshold for a in fp32]
    d = [np.asarray(a, dtype=np.float64).ravel() >= m.threshold for a in deployed]
    for i, (a, b) in enumerate(zip(f, d)):
        if a.shape != b.shape:
            raise ValueError(f"sample {i}: FP32 gives {a.size} decisions, the deployed model {b.size}")
    frames = np.concatenate([a == b for a, b in zip(f, d)])
    figs = [Figure(f"frames decided alike ({frames.size})", float(np.mean(frames)), threshold=m.min)]
    idx, note = _labelled(labels), ""
    truth = {i: np.asarray(labels[i], dtype=np.float64).ravel() >= 0.5 for i in idx if _numeric(labels[i])}
    if idx and all(i in truth and truth[i].shape == f[i].shape for i in idx):
        figs.append(_accuracy_figure("frame accuracy vs labels", np.concatenate([f[i] == truth[i] for i in idx]).tolist(),
                                     np.concatenate([d[i] == truth[i] for i in idx]).tolist(), m.label_drop_max))
    elif idx:
        note = "the labels are not one 0/1 value per frame of these answers; not compared with them"
    return MetricResult(m.label, m.kind, figs, len(f), [i for i, (a, b) in enumerate(zip(f, d)) if not np.array_equal(a, b)],
                        note=note)


def _numeric(x) -> bool:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    try:
        np.asarray(x, dtype=np.float64)
        return True
    except (TypeError, ValueError):
        return False
