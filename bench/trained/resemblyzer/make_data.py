"""Speech of six espeak-ng voices, two different sentences each, for validation (each utterance's
nearest neighbour should be the same voice's other one); four other voices for calibration."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import media  # noqa: E402

VALIDATION = ["en-us+m1", "en-us+f2", "en-gb+m3", "en-gb-scotland+f4", "en-029+m5", "en-gb-x-rp+f1"]
CALIBRATION = ["en-us+m4", "en-gb+f3", "en-gb-x-gbclan+m2", "en-us+f5"]
SENTENCES = ["The quick brown fox jumps over the lazy dog near the river bank.",
             "Please remember to bring your umbrella when you leave the house tomorrow morning.",
             "We measured the speed of sound in the old laboratory last winter.",
             "A small boat drifted slowly across the calm blue lake at sunset."]


def make(folder: Path, seed: int) -> None:
    media.clean(folder, "data/val", "data/calib")
    for k, voice in enumerate(VALIDATION):
        for j in range(2):
            media.speech(SENTENCES[(k + j) % 4], voice, folder / f"data/val/{k}{'ab'[j]}_{voice.replace('+', '_')}.wav",
                         speed=140 + 5 * ((k + seed) % 3))
    for k, voice in enumerate(CALIBRATION):
        for j in range(4):
            media.speech(SENTENCES[j], voice, folder / f"data/calib/{k}{j}_{voice.replace('+', '_')}.wav", speed=150)


if __name__ == "__main__":
    make(Path(__file__).resolve().parent, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
