"""The YOLO failure class on a tiny detector: a saturated int32 bias and an output that packs boxes
with Sigmoid scores. Both are found and fixed by rules (signed-weights, split-packed-output); the
host part they leave ships in the package and run.py reproduces the validated outputs."""

from __future__ import annotations

import json

import onnx
import pytest

from bot.deploy import deploy
from bot.stages.quantize import saturated_biases
from tests.conftest import write_model

# The class branch reads a tiny activation (~1e-5: random class features) and carries YOLO's class
# prior (bias ≈ −11), so its bias scale (input × weight) cannot hold the bias in int32; its scores
# (~1e-5) share one output tensor with boxes in pixels.
TINY_DETECTOR = '''
import torch
import torch.nn as nn


class TinyDetector(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.box = nn.Conv2d(8, 4, 1)
        self.cls_feat = nn.Conv2d(8, 8, 1)
        self.cls = nn.Conv2d(8, 3, 1)
        with torch.no_grad():
            self.cls_feat.weight.mul_(1e-5)
            self.cls_feat.bias.mul_(1e-5)
            self.cls.bias.fill_(-11.0)

    def forward(self, x):
        f = torch.relu(self.stem(x))
        boxes = (torch.sigmoid(self.box(f)) * 320.0).flatten(2)
        scores = torch.sigmoid(self.cls(torch.nn.functional.silu(self.cls_feat(f)))).flatten(2)
        return torch.cat([boxes, scores], 1)


def build():
    torch.manual_seed(0)
    return TinyDetector().eval()
'''

DETECTOR_SPEC = {"outputs": ["output"],
                 "validation": {"samples": 2, "outputs": {"output": {"parts": {"boxes": [0, 4], "scores": [4, 7]},
                                                                     "sqnr_min_db": 15}}}}


@pytest.mark.htp
def test_tiny_detector_is_repaired_by_rules_and_its_package_runs_the_host_part(tmp_path):
    folder = write_model(tmp_path / "models" / "det", DETECTOR_SPEC, code=TINY_DETECTOR, name="det")
    naive = deploy(folder, out_dir=tmp_path / "naive", repair=False)
    assert not naive.passed and naive.failure.stage == "quantize"
    assert naive.failure.details["saturated_biases"], "the class bias must be seen clipped, not rounded"

    out = tmp_path / "dep"
    outcome = deploy(folder, out_dir=out)
    kept = [a["repair"] for a in outcome.manifest["repairs"] if a["kept"]]
    assert outcome.passed, outcome.failure and outcome.failure.message
    assert kept == ["signed-weights", "split-packed-output"]
    assert outcome.manifest["llm"]["calls"] == 0
    quantized = onnx.load(str(out / "quantize" / "model.onnx"))
    assert not saturated_biases(quantized)
    assert "Concat" not in {n.op_type for n in quantized.graph.node if n.output[0] in {o.name for o in quantized.graph.output}}
    scores = outcome.result("validate").metrics["outputs"]["output.scores"]
    assert scores["cosine"] >= 0.99 and scores["sqnr_db"] >= 15
    iface = json.loads((out / "package" / "interface.json").read_text())
    part = iface["host_postprocess"]["parts"][0]
    assert part["ops"] == ["Sigmoid", "Reshape", "Concat"] and (out / "package" / part["file"]).is_file()
    assert [o["name"] for o in iface["outputs"]] == ["output"]
    smoke = next(c for c in outcome.result("package").checks if "run.py" in c.name)
    assert smoke.passed, smoke.detail
