"""Text probability map → rapidocr's DB decisions and boxes: pixels above 0.3 are text; each connected
region is a text box (its bounding rectangle, expanded by DB's unclip ratio 1.6), kept when its mean
probability is at least 0.5 (rapidocr's box_thresh) and it spans at least 3 pixels each way."""

from __future__ import annotations

import numpy as np

THRESH, BOX_THRESH, UNCLIP, MIN_SIDE = 0.3, 0.5, 1.6, 3


def answer(outputs: dict[str, np.ndarray]) -> dict:
    from scipy import ndimage

    prob = np.asarray(outputs["sigmoid_0.tmp_0"], np.float32)[0, 0]
    mask = prob > THRESH
    regions, n = ndimage.label(mask)
    boxes = []
    for k, sl in enumerate(ndimage.find_objects(regions), start=1):
        ys, xs = sl
        h, w = ys.stop - ys.start, xs.stop - xs.start
        if min(h, w) < MIN_SIDE:
            continue
        score = float(prob[sl][regions[sl] == k].mean())
        if score < BOX_THRESH:
            continue
        d = (w * h) * UNCLIP / (2 * (w + h))  # DB's unclip distance: area · ratio / perimeter
        boxes.append({"box": [max(0.0, xs.start - d), max(0.0, ys.start - d), min(320.0, xs.stop + d),
                              min(320.0, ys.stop + d)], "score": score, "label": "text"})
    return {"text_pixels": prob.ravel(), "boxes": boxes}
