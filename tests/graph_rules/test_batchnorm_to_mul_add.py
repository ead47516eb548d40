"""batchnorm-to-mul-add: LeViT's Linear + BatchNorm1d, which the HTP refuses once quantized
("QNN Batchnorm unsupported datatype on HTP.", measured on LeViT-128S in the zoo; a tiny graph of
the same form is accepted, so the rejection is checked through the planner here and on LeViT in
bench/zoo.py)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import onnxslim
import torch
import torch.nn as nn

from bot import backends
from bot.graph.rules import apply_rewrites
from bot.records import Failure, FailureKind, RejectedNode
from bot.repair.loop import RepairLoop
from bot.repair.state import RepairState
from bot.spec import load_spec
from tests.conftest import write_model


class LinearBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(16, 32)
        self.bn = nn.BatchNorm1d(32)
        self.bn.running_mean.uniform_(-0.5, 0.5)
        self.bn.running_var.uniform_(0.5, 2.0)
        self.bn.weight.data.uniform_(0.5, 1.5)

    def forward(self, x):  # LeViT's Linear_BN: BatchNorm1d over the flattened tokens
        y = self.proj(x)
        return self.bn(y.flatten(0, 1)).reshape_as(y)


def test_unfolded_batchnorm_becomes_mul_add_with_the_same_numbers():
    x = torch.rand(1, 12, 16)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(LinearBN().eval(), (x,), buf, opset_version=17, dynamo=False, input_names=["x"])
    model = onnx.shape_inference.infer_shapes(onnxslim.slim(onnx.load_from_string(buf.getvalue())))
    assert "BatchNormalization" in [n.op_type for n in model.graph.node]  # neither exporter nor slim folds it
    rewritten, counts = apply_rewrites(model, ["batchnorm-to-mul-add"])
    assert counts == {"batchnorm-to-mul-add": 1}
    assert "BatchNormalization" not in [n.op_type for n in rewritten.graph.node]
    a = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x.numpy()})[0]
    b = ort.InferenceSession(rewritten.SerializeToString()).run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_the_planner_answers_the_htp_refusal_with_the_rule_first(tmp_path):
    folder = write_model(tmp_path / "m")
    spec, folder = load_spec(folder)
    loop = RepairLoop(spec, folder, tmp_path / "o", backends.for_target(spec.target))
    refusal = Failure("compile", FailureKind.OP_REJECTED, "20 node(s) would fall back to the CPU",
                      nodes=[RejectedNode("/blocks.0/bn/BatchNormalization", "BatchNormalization",
                                          "QNN Batchnorm unsupported datatype on HTP.")])
    plan = loop.plan(refusal, RepairState(), best=None)
    assert plan[0][0].id == "batchnorm-to-mul-add"
    assert plan[0][1].options["optimize"]["rewrites"] == ["batchnorm-to-mul-add"]
