"""Maps → bat calls, by batdetect2's own `post_process.run_nms` (9 × 9 peak picking, the top 200 per
second, boxes from the size map) at a detection threshold of 0.3 (batdetect2's CLI default);
boxes in [start s, low kHz, end s, high kHz] and the most likely species as the label."""

from __future__ import annotations

import numpy as np

THRESHOLD = 0.3
_PARAMS = None


def answer(outputs: dict[str, np.ndarray]) -> list[dict]:
    global _PARAMS
    import torch
    from batdetect2.detector.post_process import run_nms
    from batdetect2.types import ModelOutput

    from prep import checkpoint

    if _PARAMS is None:
        _PARAMS = {**checkpoint()["params"], "detection_threshold": THRESHOLD}
    det, size, cls = (torch.from_numpy(np.asarray(outputs[k], np.float32)) for k in ("det", "size", "class"))
    out = ModelOutput(pred_det=det, pred_size=size, pred_class=cls, pred_class_un_norm=cls,
                      features=torch.zeros(det.shape[0], 1, *det.shape[2:]))
    preds, _ = run_nms(out, _PARAMS, np.array([256000.0]))
    p = preds[0]
    names = _PARAMS["class_names"]
    return [{"box": [float(p["start_times"][i]), float(p["low_freqs"][i]) / 1e3, float(p["end_times"][i]),
                     float(p["high_freqs"][i]) / 1e3],
             "score": float(p["det_probs"][i]), "label": names[int(np.argmax(p["class_probs"][: len(names), i]))]}
            for i in range(len(p["det_probs"]))]
