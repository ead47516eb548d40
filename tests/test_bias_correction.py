"""bot.quant.bias_correction on tiny graphs, and the quantize stage's `bias_correction` option.

The graphs hold coarse per-channel weights (a few levels per channel, stored as int8) so the rounding's
mean shift is large and known: the float graph's per-channel output means are the target.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from bot.quant.bias_correction import correct_biases, correct_biases_empirically

RNG = np.random.default_rng(1)
C = 6
W1 = (RNG.normal(size=(C, 3, 3, 3)) * 0.2 + 0.05).astype(np.float32)  # skewed: rounding errors don't cancel
B1 = (RNG.normal(size=C) * 0.1).astype(np.float32)
W2 = (RNG.normal(size=(C, 1, 3, 3)) * 0.3 + 0.1).astype(np.float32)  # depthwise
B2 = (RNG.normal(size=C) * 0.1).astype(np.float32)
X_SCALE = 1 / 255
LEVELS = 3  # q in [-3, 3]: a coarse rounding, so the shift is far above the bias step


def calib(n: int, seed: int) -> list[dict[str, np.ndarray]]:
    g = np.random.default_rng(seed)
    return [{"x": (g.random((1, 3, 12, 12)) * 0.8 + 0.1).astype(np.float32)} for _ in range(n)]


def float_graph(path) -> None:
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["y"], name="conv2", pads=[1, 1, 1, 1], group=C)]
    inits = [numpy_helper.from_array(a, n) for a, n in ((W1, "w1"), (B1, "b1"), (W2, "w2"), (B2, "b2"))]
    g = helper.make_graph(nodes, "f", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, C, 12, 12])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)]), str(path))


def qdq_graph() -> onnx.ModelProto:
    """The float graph with the input quantized finely and both Convs' weights coarsely, biases int32."""
    inits, nodes = [], [helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["x_q"]),
                        helper.make_node("DequantizeLinear", ["x_q", "x_s", "x_z"], ["x_dq"])]
    inits += [numpy_helper.from_array(np.float32(X_SCALE), "x_s"), numpy_helper.from_array(np.uint8(0), "x_z")]
    for i, (w, b, src, dst, group) in enumerate(((W1, B1, "x_dq", "c1", 1), (W2, B2, "r1", "y", C)), 1):
        s = (np.abs(w.reshape(C, -1)).max(1) / LEVELS).astype(np.float32)
        q = np.clip(np.round(w / s.reshape(-1, 1, 1, 1)), -LEVELS, LEVELS).astype(np.int8)
        bs = (s * X_SCALE).astype(np.float32)
        inits += [numpy_helper.from_array(q, f"w{i}_q"), numpy_helper.from_array(s, f"w{i}_s"),
                  numpy_helper.from_array(np.zeros(C, np.int8), f"w{i}_z"),
                  numpy_helper.from_array(np.round(b / bs).astype(np.int32), f"b{i}_q"),
                  numpy_helper.from_array(bs, f"b{i}_s"), numpy_helper.from_array(np.zeros(C, np.int32), f"b{i}_z")]
        nodes += [helper.make_node("DequantizeLinear", [f"w{i}_q", f"w{i}_s", f"w{i}_z"], [f"w{i}"], axis=0),
                  helper.make_node("DequantizeLinear", [f"b{i}_q", f"b{i}_s", f"b{i}_z"], [f"b{i}"], axis=0),
                  helper.make_node("Conv", [src, f"w{i}", f"b{i}"], [dst], name=f"conv{i}", pads=[1, 1, 1, 1],
                                   group=group)]
        if i == 1:
            nodes.append(helper.make_node("Relu", ["c1"], ["r1"]))
    g = helper.make_graph(nodes, "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, C, 12, 12])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])


def channel_means(model, feeds) -> np.ndarray:
    blob = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    return np.mean([sess.run(None, f)[0].mean(axis=(0, 2, 3)) for f in feeds], axis=0)


@pytest.fixture
def float_model(tmp_path):
    path = tmp_path / "float.onnx"
    float_graph(path)
    return path


def test_analytic_correction_moves_the_output_means_to_the_float_graphs(float_model):
    cal, held_out = calib(8, 0), calib(8, 99)
    model = qdq_graph()
    before = np.abs(channel_means(model, held_out) - channel_means(float_model, held_out)).max()
    done = correct_biases(float_model, model, cal)
    assert (done.corrected, done.skipped) == (2, 0)
    assert done.largest_shift_steps > 1  # the shift was many bias steps: the correction is not rounding noise
    after = np.abs(channel_means(model, held_out) - channel_means(float_model, held_out)).max()
    assert after < before / 3, (before, after)  # on samples it never saw
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == [n.op_type for n in qdq_graph().graph.node]  # biases only


def test_empirical_pass_gets_at_least_as_close_as_the_analytic_one(float_model):
    cal = calib(8, 0)
    analytic = qdq_graph()
    correct_biases(float_model, analytic, cal)
    empirical = qdq_graph()
    correct_biases(float_model, empirical, cal)
    assert correct_biases_empirically(float_model, empirical, cal) == 2
    target = channel_means(float_model, cal)
    err_a = np.abs(channel_means(analytic, cal) - target).max()
    err_e = np.abs(channel_means(empirical, cal) - target).max()
    assert err_e <= err_a + 1e-6
    assert err_e < 2 * float((np.abs(W2.reshape(C, -1)).max(1) / LEVELS * X_SCALE).max())  # a bias step or two


def test_a_bias_two_convs_share_is_left_alone(float_model):
    model = qdq_graph()
    for n in model.graph.node:  # conv2's bias DQ reads conv1's int32 constant
        if n.op_type == "DequantizeLinear" and n.output[0] == "b2":
            n.input[0] = "b1_q"
    shared = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "b1_q")).copy()
    done = correct_biases(float_model, model, calib(4, 0))
    assert (done.corrected, done.skipped) == (0, 2)  # one constant cannot carry two Convs' shifts
    np.testing.assert_array_equal(numpy_helper.to_array(next(t for t in model.graph.initializer
                                                             if t.name == "b1_q")), shared)


def test_the_quantize_stage_option_corrects_and_says_so(tmp_path):
    from bot import backends
    from bot.pipeline import Pipeline
    from bot.spec import load_spec
    from tests.conftest import write_model

    folder = write_model(tmp_path / "m" / "tiny")
    spec, folder = load_spec(folder)
    runs = {}
    for how in ("off", "analytic"):
        runs[how] = Pipeline(spec, folder, tmp_path / how, backends.for_target(spec.target),
                             workflow=["load", "export", "optimize", "quantize"]).run(
            {"quantize": {"bias_correction": how}})
    off, on = (runs[h].result("quantize") for h in ("off", "analytic"))
    assert off.passed and on.passed
    assert "bias_correction" not in off.metrics
    bc = on.metrics["bias_correction"]
    assert bc["how"] == "analytic" and bc["corrected"] >= 1
    a = onnx.load(str(runs["off"].dirs["quantize"] / "model.onnx"))
    b = onnx.load(str(runs["analytic"].dirs["quantize"] / "model.onnx"))
    assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
    changed = [t.name for t, u in zip(a.graph.initializer, b.graph.initializer)
               if not np.array_equal(numpy_helper.to_array(t), numpy_helper.to_array(u))]
    assert changed and all(numpy_helper.to_array(next(t for t in b.graph.initializer if t.name == c)).dtype
                           == np.int32 for c in changed)  # only int32 bias constants moved
