"""Resemblyzer 0.1.4: the GE2E speaker encoder (3-layer LSTM) with the weights in its wheel.

resemblyzer.audio imports webrtcvad at module level for trimming long silences, which neither the
network nor prep.py uses: a stand-in module suffices."""

from __future__ import annotations

import importlib.util
import sys
import types


def stand_ins() -> None:
    if "webrtcvad" not in sys.modules and importlib.util.find_spec("webrtcvad") is None:
        sys.modules["webrtcvad"] = types.ModuleType("webrtcvad")


def build():
    stand_ins()
    from resemblyzer import VoiceEncoder

    return VoiceEncoder(device="cpu", verbose=False).eval()  # loads resemblyzer/pretrained.pt
