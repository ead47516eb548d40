"""The CPU check of a QDQ graph computes the quantized arithmetic as written.

onnxruntime's extended optimizations fuse DequantizeLinear → Conv → QuantizeLinear into QLinearConv;
on x86 without VNNI its uint8 × int8 kernel sums products in pairs into saturating 16-bit lanes, so
a graph with int8 weights (AIMET's, signed-weights) came back far worse than the HTP computes it (the
deep-sort MobileNetV2's AIMET QuantSim graph: cosine 0.742 fused, 0.946 as written). The quantize
stage's host cosine screens repair candidates, so it must not carry that artefact."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bot.stages._onnx import cpu_outputs

C = 64  # input channels of one 1×1 conv: 32 pairs of 255 × 127 products, each pair over 16 bits


def _int8_weight_qdq_conv(path):
    t = lambda name, a: numpy_helper.from_array(np.asarray(a), name)  # noqa: E731
    inits = [t("xs", np.float32(1 / 255)), t("xz", np.uint8(0)),
             t("w", np.full((1, C, 1, 1), 127, np.int8)), t("ws", np.float32(0.01)), t("wz", np.int8(0)),
             t("ys", np.float32(0.5)), t("yz", np.uint8(0))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["c"]),
             helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["y"])]
    g = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, 1, 1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1, 1])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.save(m, str(path))


def test_int8_weights_are_not_saturated_by_a_fused_cpu_kernel(tmp_path):
    path = tmp_path / "qdq.onnx"
    _int8_weight_qdq_conv(path)
    x = np.ones((1, C, 1, 1), np.float32)  # quantizes to 255
    # as written: 64 × 1.0 × 1.27 = 81.28, on the output's 0.5 grid
    expected = np.round(C * 1.0 * 127 * 0.01 / 0.5) * 0.5
    (y,), = cpu_outputs(path, [{"x": x}])
    assert abs(float(y.ravel()[0]) - expected) <= 0.5, (float(y.ravel()[0]), expected)
