"""A declared input the model never reads: the TorchScript exporter drops it from the graph, which
used to pass export and optimize and then fail at quantize ("Invalid input name"). Export now
reports it, every later stage feeds only the graph's inputs, and interface.json marks it unused."""

from __future__ import annotations

import json

import pytest

from bot import backends
from bot import samples as S
from bot.repair.loop import RepairLoop
from bot.repair.state import RepairState
from bot.spec import load_spec
from tests.conftest import write_model

MODEL = '''
import torch
import torch.nn as nn


class WithMask(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x, mask):  # mask: declared by the model's API, never read
        return torch.relu(self.c(x))


def build():
    torch.manual_seed(0)
    return WithMask().eval()
'''


def _folder(tmp_path, exporter="torchscript"):
    return write_model(tmp_path / "m", {"inputs": [{"name": "x", "shape": [1, 3, 8, 8], "range": [0, 1]},
                                                   {"name": "mask", "shape": [1, 1, 8, 8], "range": [0, 1]}],
                                        "export": {"exporter": exporter}}, code=MODEL)


def _run(tmp_path, folder, workflow=None):
    spec, folder = load_spec(folder)
    return RepairLoop(spec, folder, tmp_path / "o", backends.for_target(spec.target),
                      workflow=workflow).run_state(RepairState())


def test_dropped_input_reported_at_export_and_left_out_of_the_feeds(tmp_path):
    out = _run(tmp_path, _folder(tmp_path), ["load", "export", "optimize"])
    assert out.passed, out.failure
    export = out.result("export")
    assert export.metrics["unused_inputs"] == ["mask"]
    assert any("does not use" in c.name and c.value == ["mask"] for c in export.checks)
    for kind in ("samples", "calibration"):
        assert all(set(s) == {"x"} for s in S.load(out.dirs["export"] / f"{kind}.npz"))
        assert all(set(s) == {"x", "mask"} for s in S.load(out.dirs["load"] / f"{kind}.npz"))


def test_an_input_the_graph_takes_is_not_reported(tmp_path):
    out = _run(tmp_path, _folder(tmp_path, exporter="dynamo"), ["load", "export"])
    assert out.passed, out.failure
    assert "unused_inputs" not in out.result("export").metrics and "samples" not in out.result("export").artifacts


@pytest.mark.htp
def test_dropped_input_deploys_and_interface_marks_it(tmp_path):
    """Before: quantize failed, "quantization failed: InvalidArgument: ... Invalid input name: mask"."""
    out = _run(tmp_path, _folder(tmp_path))
    assert out.passed, out.failure
    iface = json.loads((out.dirs["package"] / "interface.json").read_text())
    assert [(i["name"], i.get("unused", False)) for i in iface["inputs"]] == [("x", False), ("mask", True)]
    assert {c.name: c.passed for c in out.result("package").checks}["run.py reproduces the validated outputs"]
