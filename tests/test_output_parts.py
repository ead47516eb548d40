"""Outputs that pack quantities of different scale: a detector head's boxes (0–320) and scores
(0–1) in one tensor. At 8 bits one scale serves both and the scores drown; checked as one tensor
the cosine still looks perfect, so the definition names the parts and each is held to its bar."""

from __future__ import annotations

import pytest

from bot.deploy import deploy
from tests.conftest import write_model

HEAD = '''
import torch
import torch.nn as nn


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.feat = nn.Conv2d(3, 16, 3, padding=1)
        self.box = nn.Conv2d(16, 4, 1)
        self.cls = nn.Conv2d(16, 8, 1)

    def forward(self, x):
        f = torch.relu(self.feat(x))
        boxes = torch.sigmoid(self.box(f)).flatten(2) * 320.0     # pixels
        scores = torch.sigmoid(self.cls(f)).flatten(2)            # probabilities
        return torch.cat([boxes, scores], 1)                      # [1, 4 + 8, cells]


def build():
    torch.manual_seed(0)
    return Head().eval()
'''


@pytest.mark.htp
def test_scores_are_held_to_their_own_bar_and_the_loop_restores_them(tmp_path):
    spec = {"inputs": [{"name": "x", "shape": [1, 3, 16, 16]}], "target": {"precision": "w8a8"},
            "validation": {"samples": 2, "outputs": {"y": {"sqnr_min_db": 20, "parts": {"boxes": [0, 4],
                                                                                        "scores": [4, 12]}}}}}
    folder = write_model(tmp_path / "m", spec, code=HEAD)
    naive = deploy(folder, out_dir=tmp_path / "naive", repair=False)
    metrics = naive.failure.details["metrics"]
    assert naive.failure.details["failing_outputs"] == ["y.scores"]
    # (cosine flatters all-positive scores; SQNR does not)
    assert metrics["y.boxes"]["sqnr_db"] >= 20 > metrics["y.scores"]["sqnr_db"]

    repaired = deploy(folder, out_dir=tmp_path / "bot")
    assert repaired.passed, repaired.failure
    outs = repaired.result("validate").metrics["outputs"]
    assert outs["y.scores"]["sqnr_db"] >= 20 and outs["y.boxes"]["sqnr_db"] >= 20
    # The packing Concat and the scores' Sigmoid move to the host part, so each part gets its own
    # scale on the HTP (no 16-bit tensors needed); this is the YOLO head's fix in miniature.
    kept = [a["repair"] for a in repaired.manifest["repairs"] if a["kept"]]
    assert kept == ["split-packed-output"]
