"""YOLOv8 output [1, 22, 2100] → detections as `nudenet._postprocess` makes them: a candidate per
anchor whose best class score is ≥ 0.2, then NMS (score 0.25, IoU 0.45), boxes in input pixels."""

from __future__ import annotations

import numpy as np

LABELS = ["FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
          "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED", "BELLY_COVERED",
          "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE", "BELLY_EXPOSED",
          "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED", "BUTTOCKS_COVERED"]
CANDIDATE, SCORE, NMS_IOU = 0.2, 0.25, 0.45


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter + 1e-9)


def answer(outputs: dict[str, np.ndarray]) -> list[dict]:
    rows = np.asarray(outputs["output0"], np.float32)[0].T  # [anchors, 4 + 18]
    scores = rows[:, 4:].max(axis=1)
    keep = scores >= CANDIDATE
    rows, scores = rows[keep], scores[keep]
    cls = rows[:, 4:].argmax(axis=1)
    boxes = np.stack([rows[:, 0] - rows[:, 2] / 2, rows[:, 1] - rows[:, 3] / 2,
                      rows[:, 0] + rows[:, 2] / 2, rows[:, 1] + rows[:, 3] / 2], axis=1).clip(0, 320)
    order = [i for i in np.argsort(-scores) if scores[i] >= SCORE]
    out = []
    while order:  # class-agnostic, as cv2.dnn.NMSBoxes is called there
        i, order = order[0], order[1:]
        out.append({"box": boxes[i].tolist(), "score": float(scores[i]), "label": LABELS[int(cls[i])]})
        if order:
            ious = _iou(boxes[i], boxes[order])
            order = [j for j, v in zip(order, ious) if v <= NMS_IOU]
    return out
