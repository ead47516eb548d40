"""Detection match: deployed boxes paired one to one with FP32's at IoU ≥ a bar."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from bot.spec.schema import DetectionsMetric
from bot.task.answers import plain
from bot.task.records import Figure, MetricResult


def boxes(answer, where: str) -> list[dict]:
    out = []
    for k, det in enumerate(plain(answer) or []):
        if not isinstance(det, dict) or "box" not in det or len(det["box"]) != 4:
            raise ValueError(f"{where}[{k}]: expected {{box: [x1, y1, x2, y2], score, label}}, got {det!r}"[:300])
        out.append({"box": [float(v) for v in det["box"]], "score": float(det.get("score", 1.0)),
                    "label": det.get("label")})
    return out


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(ref: list[dict], got: list[dict], bar: float, same_label: bool) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs (ref index, got index), highest IoU first, each IoU ≥ bar."""
    cands = sorted(((iou(r["box"], g["box"]), i, j) for i, r in enumerate(ref) for j, g in enumerate(got)
                    if not same_label or r["label"] == g["label"]), reverse=True)
    used_r, used_g, pairs = set(), set(), []
    for v, i, j in cands:
        if v >= bar and i not in used_r and j not in used_g:
            used_r.add(i), used_g.add(j), pairs.append((i, j))
    return sorted(pairs)


def detections(m: DetectionsMetric, fp32: list, deployed: list, labels: list | None, folder) -> MetricResult:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    f = [boxes(a, f"FP32 answer {i}") for i, a in enumerate(fp32)]
    d = [boxes(a, f"deployed answer {i}") for i, a in enumerate(deployed)]
    pairs = [match(a, b, m.iou, m.same_label) for a, b in zip(f, d)]
    n_f, n_d, n_m = sum(map(len, f)), sum(map(len, d)), sum(map(len, pairs))
    changes = [abs(f[s][i]["score"] - d[s][j]["score"]) for s, ps in enumerate(pairs) for i, j in ps]
    figs = [Figure(f"recall of FP32's boxes at IoU ≥ {m.iou:g}", n_m / n_f if n_f else 1.0, threshold=m.recall_min),
            Figure(f"precision vs FP32's boxes at IoU ≥ {m.iou:g}", n_m / n_d if n_d else 1.0,
                   threshold=m.precision_min),
            Figure("mean |score change| of matched boxes", float(np.mean(changes)) if changes else 0.0,
                   threshold=m.score_change_max, op="≤"),
            Figure("boxes", float(n_d), fp32=float(n_f))]
    idx = [i for i, lab in enumerate(labels or []) if lab is not None]
    if idx:
        truth = {i: boxes(labels[i], f"labels[{i}]") for i in idx}
        n_t = sum(len(truth[i]) for i in idx)
        rec = lambda ans: sum(len(match(truth[i], ans[i], m.iou, m.same_label)) for i in idx) / n_t if n_t else 1.0
        figs.append(Figure(f"recall vs labelled boxes ({n_t})", rec(d), fp32=rec(f)))
    bad = [s for s, ps in enumerate(pairs) if len(ps) != len(f[s]) or len(ps) != len(d[s])]
    return MetricResult(m.label, m.kind, figs, len(f), bad)
