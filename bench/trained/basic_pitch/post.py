"""Note activations → the answer: the note-activation frames (172 × 88 probabilities, decided at
basic-pitch's default frame threshold 0.3) and the set of MIDI pitches heard in the window (a pitch
active for at least 11 frames, basic-pitch's minimum note length of ~127 ms, at that threshold).

The ONNX graph's outputs come in the order onset, note, contour (basic_pitch.inference maps
StatefulPartitionedCall:1 → note, :2 → onset, :0 → contour)."""

from __future__ import annotations

import numpy as np

FRAME_THRESHOLD, MIN_FRAMES, LOWEST_MIDI = 0.3, 11, 21


def answer(outputs: dict[str, np.ndarray]) -> dict:
    note = np.asarray(outputs["StatefulPartitionedCall:1"], np.float32)[0]  # note activations [172, 88]
    active = (note >= FRAME_THRESHOLD).sum(axis=0)
    return {"frames": note.ravel(), "pitches": [LOWEST_MIDI + int(i) for i in np.nonzero(active >= MIN_FRAMES)[0]]}
