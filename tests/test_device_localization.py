"""Device-side localization and the rule it found: telling device numerics from quantization error."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import onnxslim
import torch
import torch.nn.functional as F

from bot.repair.graph import apply_rewrites
from bot.repair.localize import LayerError, as_manifest, divergent


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


def _layer(i, op, cpu, device):
    return LayerError(f"t{i}", op, cpu, 30.0, i, device_cosine=device)


def test_divergence_is_the_device_far_below_the_cpu_simulation_first_layer_first():
    # EfficientViT-B0 as measured: quantization error on a Conv (device == cpu), then the Pad
    # the device gets wrong, then its echo downstream
    layers = [_layer(0, "Conv", 0.9698, 0.9698), _layer(1, "Pad", 0.99998, 0.01278),
              _layer(2, "MatMul", 0.9984, 0.0656), _layer(3, "Add", 0.999, 0.999)]
    div = divergent(layers)
    assert [e.op for e in div] == ["Pad", "MatMul"]
    assert as_manifest(layers, None)["first_device_divergence"] == "t1"
    assert divergent([_layer(0, "Conv", 0.95, 0.94)]) == []  # plain quantization error
