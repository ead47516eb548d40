"""Shared fixtures: tiny model folders written into a temporary directory by each test."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

TINY_MODEL = '''
import torch
import torch.nn as nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x):
        if torch.onnx.is_in_onnx_export():
            import os, time
            while os.environ.get("TINY_SLOW_EXPORT") and os.path.exists(os.environ["TINY_SLOW_EXPORT"]):
                time.sleep(0.05)
        return self.c2(torch.relu(self.c1(x)))


def build():
    torch.manual_seed(0)
    return Tiny().eval()
'''


def write_model(folder: Path, spec: dict | None = None, code: str = TINY_MODEL, name: str = "tiny") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.py").write_text(textwrap.dedent(code))
    base = {"name": name, "entry": "model.py:build",
            "inputs": [{"name": "x", "shape": [1, 3, 16, 16], "range": [0, 1]}],
            "outputs": ["y"], "calibration": {"samples": 4}, "validation": {"samples": 1}}
    base.update(spec or {})
    (folder / "aipc.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    return folder


@pytest.fixture
def tiny_model(tmp_path) -> Path:
    return write_model(tmp_path / "models" / "tiny")


@pytest.fixture(autouse=True)
def _no_forge_by_default(monkeypatch):
    """Deploying an example inside this checkout must not commit to its aipc/* branches;
    the forge tests turn the forge back on for their own temporary repositories."""
    monkeypatch.setenv("AIPC_FORGE", "off")


def save_image_graph(path: Path, nodes: list, initializers: list, name: str = "g"):
    """A float graph x [1, 4, 8, 8] → y [1, 4, 8, 8] at opset 17 (IR 9, which onnxruntime reads), saved at
    `path` and returned: the tiny conv blocks the quantize-stage tests build node by node."""
    import onnx  # deferred: only the graph-level tests need it
    from onnx import TensorProto, helper

    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], initializers)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.save(m, str(path))
    return m
