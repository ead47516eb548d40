"""Weights vs activations attribution on a graph whose Relu/Clip onnxruntime's quantizer removed
(the following Q's range clips instead): the weights-only variant must still clip there. With an
Identity in the Q/DQ pair's place, PP-OCR's hard-swish `x · Clip(x + 3, 0, 6)` grew without bound,
the weights-only graph reached inf/NaN and the planner blamed the weights on a NaN."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from bot.repair.attribution import attribute, float_activations
from bot.stages.quantize import QuantSettings, quantize_with_ort
from tests.conftest import save_image_graph


def _conv_relu_conv(path):
    rng = np.random.RandomState(0)
    w0 = numpy_helper.from_array(rng.randn(8, 4, 3, 3).astype(np.float32) * 0.4, "w0")
    w1 = numpy_helper.from_array(rng.randn(4, 8, 3, 3).astype(np.float32) * 0.4, "w1")
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1], name="conv0"),
             helper.make_node("Relu", ["c0"], ["r0"], name="relu0"),
             helper.make_node("Conv", ["r0", "w1"], ["y"], pads=[1, 1, 1, 1], name="conv1")]
    save_image_graph(path, nodes, [w0, w1], "crc")


def test_the_weights_only_graph_keeps_a_removed_relu(tmp_path):
    import onnxruntime as ort

    src, out = tmp_path / "m.onnx", tmp_path / "q.onnx"
    _conv_relu_conv(src)
    rng = np.random.RandomState(1)
    feeds = [{"x": rng.randn(1, 4, 8, 8).astype(np.float32)} for _ in range(4)]
    quantize_with_ort(src, out, tmp_path, feeds, QuantSettings(precision="w8a8"))
    q = onnx.load(str(out))
    assert "Relu" not in {n.op_type for n in q.graph.node}, "onnxruntime kept the Relu: the case is not exercised"
    ref = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    golden = [{"y": ref.run(None, f)[0]} for f in feeds]
    att = attribute(src, out, feeds, golden)
    assert att is not None
    # 8-bit per-channel weights on a 3×3 conv pair: the weights alone keep the output
    assert att.weights_only_cosine > 0.99, att
    assert att.activations_only_cosine > 0.99, att
    # and the variant itself clips the removed Relu's input at zero
    w_only = float_activations(q)
    assert "Clip" in {n.op_type for n in w_only.graph.node}
