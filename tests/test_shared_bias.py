"""A bias initializer shared by two Convs, where a Conv's output is named like onnxruntime's copy of
that bias (tf2onnx names outputs `<bias>2`; basic-pitch broke this way): the quantize step must
write a graph whose every tensor has one producer and that runs on the CPU."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from bot.stages.quantize import QuantSettings, quantize_with_ort, unshare_biases
from tests.conftest import save_image_graph


def _shared_bias_model(path):
    rng = np.random.RandomState(0)
    w1 = numpy_helper.from_array(rng.randn(4, 4, 3, 3).astype(np.float32) * 0.3, "w1")
    w2 = numpy_helper.from_array(rng.randn(4, 4, 3, 3).astype(np.float32) * 0.3, "w2")
    b = numpy_helper.from_array(np.linspace(-0.5, 0.5, 4).astype(np.float32), "b")
    # onnxruntime copies the shared bias as "b0": the first Conv's output already has that name
    nodes = [helper.make_node("Conv", ["x", "w1", "b"], ["b0"], pads=[1, 1, 1, 1], name="conv_a"),
             helper.make_node("Sigmoid", ["b0"], ["r"], name="sigmoid"),
             helper.make_node("Conv", ["r", "w2", "b"], ["y"], pads=[1, 1, 1, 1], name="conv_b")]
    return save_image_graph(path, nodes, [w1, w2, b], "shared_bias")


def test_unshare_biases_gives_the_second_reader_a_fresh_name(tmp_path):
    model = _shared_bias_model(tmp_path / "m.onnx")
    assert unshare_biases(model) == 1
    biases = [n.input[2] for n in model.graph.node if n.op_type == "Conv"]
    assert biases[0] == "b" and biases[1] not in ("b", "b0") and biases[1] in {i.name for i in model.graph.initializer}
    assert unshare_biases(model) == 0  # nothing left to share


def test_quantizing_a_shared_bias_keeps_every_activation(tmp_path):
    src = tmp_path / "m.onnx"
    _shared_bias_model(src)
    rng = np.random.RandomState(1)
    calib = [{"x": rng.randn(1, 4, 8, 8).astype(np.float32)} for _ in range(4)]
    out = tmp_path / "q.onnx"
    quantize_with_ort(src, out, tmp_path, calib, QuantSettings(precision="w8a8"))
    q = onnx.load(str(out))
    outputs = [o for n in q.graph.node for o in n.output]
    assert len(outputs) == len(set(outputs)), "two nodes write the same tensor"
    feed = calib[0]
    ref = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    cos = float(np.ravel(ref) @ np.ravel(got) / (np.linalg.norm(ref) * np.linalg.norm(got)))
    assert cos > 0.99


def test_a_flattened_gemm_bias_drops_its_recorded_2d_shape():
    """tf2onnx records value_info for initializers: magika's [1, 214] bias entry contradicted the
    reshaped [214] one and onnxruntime's shape inference refused the graph."""
    from bot.stages.quantize import flatten_gemm_biases

    rng = np.random.RandomState(0)
    w = numpy_helper.from_array(rng.randn(6, 16).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.randn(1, 6).astype(np.float32), "b")
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])], [w, b],
                              value_info=[helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 6])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert flatten_gemm_biases(model) == 1
    assert [list(i.dims) for i in model.graph.initializer if i.name == "b"] == [[6]]
    onnx.shape_inference.infer_shapes(model, strict_mode=True)  # raised before the entry was dropped
    x = rng.randn(1, 16).astype(np.float32)
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, x @ numpy_helper.to_array(w).T + numpy_helper.to_array(b), rtol=1e-5, atol=1e-5)
