"""silero-vad 6.2.3: the 16 kHz network inside the wheel's TorchScript file.

Adaptation: the top-level TorchScript module is stateful (it keeps the LSTM state and the last 64
samples between calls, and takes the sample rate); the deployable graph is its `_model`, one step
with the state as an explicit input and output, which the app (prep.py's framing) carries along."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch


def jit_file() -> Path:
    return Path(importlib.util.find_spec("silero_vad").submodule_search_locations[0]) / "data/silero_vad.jit"


def build() -> torch.nn.Module:
    """The ScriptModule `_model` itself: x [1, 576] (64 samples of context + 512 new ones), state
    [2, 1, 128] → P(speech) [1, 1], state. (Wrapped in a plain nn.Module it cannot be traced:
    "Tried to trace <...VADRNNJIT> but it is not part of the active trace".)"""
    return torch.jit.load(str(jit_file()), map_location="cpu")._model.eval()
