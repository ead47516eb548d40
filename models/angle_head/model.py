"""Orientation head: the angle between an image embedding and K reference directions.

`torch.acos` exports as ONNX `Acos`, which the QNN EP refuses ("Operators of type `Acos` are not
supported by QNN EP"); no graph rule in the catalogue rewrites it, so the node would fall back to
the CPU. The fix is in the source: acos(c) = atan2(sqrt(1 - c²), c), which maps to Atan and
friends the HTP runs (see skills/qnn-operator-compat/patches/acos-to-atan2.diff)."""

import torch
from torch import nn
from torch.nn import functional as F

K = 8


class AngleHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 16))
        self.directions = nn.Parameter(torch.randn(K, 16))

    def forward(self, image):
        e = F.normalize(self.features(image), dim=-1)
        c = (e @ F.normalize(self.directions, dim=-1).t()).clamp(-0.999, 0.999)
        return torch.acos(c)


def build():
    torch.manual_seed(0)
    return AngleHead().eval()
