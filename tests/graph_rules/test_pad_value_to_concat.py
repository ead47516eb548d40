"""pad-value-to-concat: a constant Pad with a non-zero fill value (which the HTP places but computes
wrong, found by device-side localization on EfficientViT-B0) becomes a Concat with the same numbers."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import onnxslim
import torch
import torch.nn.functional as F

from bot.graph.rules import apply_rewrites


class PadOnes(torch.nn.Module):
    def forward(self, v):
        return F.pad(torch.relu(v), (0, 1), value=1.0) * 2


def _graph(module, x) -> onnx.ModelProto:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), buf, opset_version=17, dynamo=False, input_names=["v"])
    return onnx.shape_inference.infer_shapes(onnxslim.slim(onnx.load_from_string(buf.getvalue())))


def test_pad_with_a_fill_value_becomes_concat_with_the_same_numbers():
    x = torch.rand(1, 4, 8, 6) - 0.5
    model = _graph(PadOnes(), x)
    assert [n.op_type for n in model.graph.node].count("Pad") == 1
    rewritten, counts = apply_rewrites(model, ["pad-value-to-concat"])
    assert counts == {"pad-value-to-concat": 1}
    assert "Pad" not in [n.op_type for n in rewritten.graph.node]
    before = ort.InferenceSession(model.SerializeToString()).run(None, {"v": x.numpy()})[0]
    after = ort.InferenceSession(rewritten.SerializeToString()).run(None, {"v": x.numpy()})[0]
    assert before.shape == (1, 4, 8, 7) and np.array_equal(before, after)


def test_zero_padding_is_left_alone():
    class PadZeros(torch.nn.Module):
        def forward(self, v):
            return F.pad(v, (0, 1)) * 2

    model = _graph(PadZeros(), torch.rand(1, 4, 8, 6))
    assert apply_rewrites(model, ["pad-value-to-concat"])[1] == {"pad-value-to-concat": 0}
