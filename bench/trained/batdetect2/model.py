"""batdetect2 1.3.1: the UK bat call detector Net2DFast, checkpoint `models/Net2DFast_UK_same.pth.tar`
({"params", "state_dict"}) from its wheel.

Adaptation: the network returns a NamedTuple `ModelOutput` (det, size, class, unnormalised class,
features); the deployable graph returns the three maps the detector's post-processing reads, as a
plain tuple."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch


def checkpoint() -> dict:
    root = Path(importlib.util.find_spec("batdetect2").submodule_search_locations[0])
    return torch.load(root / "models/Net2DFast_UK_same.pth.tar", map_location="cpu", weights_only=True)


class Maps(torch.nn.Module):
    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, spec: torch.Tensor):
        out = self.net(spec)
        return out.pred_det, out.pred_size, out.pred_class


def build() -> torch.nn.Module:
    from batdetect2.detector.models import Net2DFast

    ck = checkpoint()
    p = ck["params"]
    net = Net2DFast(p["num_filters"], num_classes=len(p["class_names"]), emb_dim=p["emb_dim"],
                    ip_height=p["ip_height"], resize_factor=p["resize_factor"])
    net.load_state_dict(ck["state_dict"])
    return Maps(net.eval()).eval()
