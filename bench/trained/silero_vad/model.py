"""silero-vad 6.2.3: the 16 kHz network inside the wheel's TorchScript file.

Adaptation: the top-level TorchScript module is stateful (it keeps the LSTM state and the last 64
samples between calls, and takes the sample rate); the deployable graph is its `_model`, one step
with the state as an explicit input and output, which the app (prep.py's framing) carries along."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch


class VadStep(torch.nn.Module):
    """x [1, 576] (64 samples of context + 512 new ones), state [2, 1, 128] → P(speech) [1, 1], state."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, state: torch.Tensor):
        prob, new_state = self.net(x, state)
        return prob, new_state


def jit_file() -> Path:
    return Path(importlib.util.find_spec("silero_vad").submodule_search_locations[0]) / "data/silero_vad.jit"


def build() -> torch.nn.Module:
    return VadStep(torch.jit.load(str(jit_file()), map_location="cpu")._model).eval()
