"""bot.quant.fused_activations: the Conv-output quantizer ahead of a fused Relu / Clip, on tiny QDQ graphs.

The CPU half checks which quantizers the rule drops and that the edited graph rounds once, as the HTP's
fused kernel does; the `htp` half runs the edited graph through the QNN EP with no CPU fallback, and pins
what the HTP takes as Conv weights (why the AIMET engine keeps per-channel weights symmetric).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from bot.quant.fused_activations import drop_fused_activation_quantizers

RNG = np.random.default_rng(0)
W = (RNG.normal(size=(4, 3, 3, 3)) * 0.3).astype(np.float32)
B = (RNG.normal(size=4) * 0.1).astype(np.float32)
X = RNG.normal(size=(1, 3, 8, 8)).astype(np.float32)
X_SCALE, ACT_SCALE = 8 / 255, 6 / 255


def weights(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-output-channel 8-bit weights: int8 symmetric, or asymmetric min-max as uint8 or int8."""
    flat = W.reshape(4, -1)
    if kind == "int8 symmetric":
        s = np.abs(flat).max(1) / 127
        return (np.clip(np.round(flat / s[:, None]), -127, 127).astype(np.int8).reshape(W.shape),
                s.astype(np.float32), np.zeros(4, np.int8))
    lo, hi = np.minimum(flat.min(1), 0), np.maximum(flat.max(1), 0)
    s = (hi - lo) / 255
    z = np.round(-lo / s)
    q = np.clip(np.round(flat / s[:, None]) + z[:, None], 0, 255).reshape(W.shape)
    if kind == "uint8 asymmetric":
        return q.astype(np.uint8), s.astype(np.float32), z.astype(np.uint8)
    return (q - 128).astype(np.int8), s.astype(np.float32), (z - 128).astype(np.int8)


def conv_graph(activation: str = "Clip", act_zero_point: int = 0, second_reader: bool = False,
               weight_kind: str = "int8 symmetric") -> onnx.ModelProto:
    """x → Q → DQ → Conv(DQ weights, int32 bias) → Q → DQ → activation → Q → DQ → y (AIMET's export form)."""
    q, s, z = weights(weight_kind)
    bias_scale = (s * X_SCALE).astype(np.float32)
    inits = [numpy_helper.from_array(q, "w_q"), numpy_helper.from_array(s, "w_s"), numpy_helper.from_array(z, "w_z"),
             numpy_helper.from_array(np.round(B / bias_scale).astype(np.int32), "b_q"),
             numpy_helper.from_array(bias_scale, "b_s"), numpy_helper.from_array(np.zeros(4, np.int32), "b_z"),
             numpy_helper.from_array(np.float32(X_SCALE), "x_s"), numpy_helper.from_array(np.uint8(128), "x_z"),
             numpy_helper.from_array(np.float32(0.05), "c_s"), numpy_helper.from_array(np.uint8(128), "c_z"),
             numpy_helper.from_array(np.float32(ACT_SCALE), "a_s"),
             numpy_helper.from_array(np.uint8(act_zero_point), "a_z"),
             numpy_helper.from_array(np.float32(0), "lo"), numpy_helper.from_array(np.float32(6), "hi")]
    act = (helper.make_node("Clip", ["c_dq", "lo", "hi"], ["a"], name="relu6") if activation == "Clip"
           else helper.make_node("Relu", ["c_dq"], ["a"], name="relu"))
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["x_q"]),
             helper.make_node("DequantizeLinear", ["x_q", "x_s", "x_z"], ["x_dq"]),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], axis=0),
             helper.make_node("DequantizeLinear", ["b_q", "b_s", "b_z"], ["b"], axis=0),
             helper.make_node("Conv", ["x_dq", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["c", "c_s", "c_z"], ["c_q"]),
             helper.make_node("DequantizeLinear", ["c_q", "c_s", "c_z"], ["c_dq"]),
             act,
             helper.make_node("QuantizeLinear", ["a", "a_s", "a_z"], ["a_q"]),
             helper.make_node("DequantizeLinear", ["a_q", "a_s", "a_z"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])]
    if second_reader:  # the quantized Conv output also feeds a residual branch
        nodes.append(helper.make_node("Neg", ["c_dq"], ["side"]))
        outputs.append(helper.make_tensor_value_info("side", TensorProto.FLOAT, [1, 4, 8, 8]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def cpu(model: onnx.ModelProto) -> np.ndarray:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # as written: no fused kernels
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(
        None, {"x": X})[0]


def single_rounding_reference() -> np.ndarray:
    """What the HTP's fused Conv + ReLU6 computes: the float Conv of the dequantized operands, rounded once."""
    import torch

    q, s, z = weights("int8 symmetric")
    w = (q.astype(np.float32) - z.reshape(-1, 1, 1, 1)) * s.reshape(-1, 1, 1, 1)
    bias_scale = (s * X_SCALE).astype(np.float32)
    b = np.round(B / bias_scale) * bias_scale
    xq = (np.clip(np.round(X / X_SCALE) + 128, 0, 255) - 128) * np.float32(X_SCALE)
    c = torch.nn.functional.conv2d(torch.from_numpy(xq.astype(np.float32)), torch.from_numpy(w.astype(np.float32)),
                                   torch.from_numpy(b.astype(np.float32)), padding=1).numpy()
    return np.clip(np.round(np.clip(c, 0, 6) / ACT_SCALE), 0, 255) * np.float32(ACT_SCALE)


@pytest.mark.parametrize("activation", ["Clip", "Relu"])
def test_the_conv_output_quantizer_ahead_of_a_redundant_activation_is_dropped(activation):
    model = conv_graph(activation)
    before = cpu(model)
    dropped = drop_fused_activation_quantizers(model)
    assert [(d.producer, d.activation) for d in dropped] == [("conv", activation.lower().replace("clip", "relu6"))]
    ops = [n.op_type for n in model.graph.node]
    assert ops[ops.index("Conv") + 1] == activation  # the activation reads the Conv directly
    assert ops.count("QuantizeLinear") == 2
    onnx.checker.check_model(model)
    after = cpu(model)
    # one rounding, as the fused kernel: equal to the reference; the graph as exported rounded twice
    np.testing.assert_allclose(after, single_rounding_reference(), atol=1e-6)
    assert np.abs(before - after).max() > 0


def test_a_quantizer_whose_range_the_activation_still_clips_is_kept():
    model = conv_graph("Clip", act_zero_point=20)  # the Q after ReLU6 represents negatives: Clip is not redundant
    assert drop_fused_activation_quantizers(model) == []
    assert [n.op_type for n in model.graph.node].count("QuantizeLinear") == 3


def test_a_conv_output_another_node_reads_is_kept():
    model = conv_graph("Clip", second_reader=True)
    assert drop_fused_activation_quantizers(model) == []


def _htp_session(model: onnx.ModelProto):
    from bot.backends import ort_qnn
    from bot.spec.schema import TargetSpec

    return ort_qnn._ort().InferenceSession(model.SerializeToString(),
                                           ort_qnn.session_options(TargetSpec(soc="SM8650")))


@pytest.mark.htp
def test_the_htp_ignores_the_dropped_quantizer_so_the_cpu_then_computes_what_it_does():
    exported = conv_graph("Clip")
    on_htp_as_exported = _htp_session(exported).run(None, {"x": X})[0]
    model = conv_graph("Clip")
    assert drop_fused_activation_quantizers(model)
    out = _htp_session(model).run(None, {"x": X})[0]  # no CPU fallback: the QNN EP took the whole graph
    np.testing.assert_array_equal(out, on_htp_as_exported)  # the HTP fused Conv + ReLU6 either way
    assert np.abs(out - cpu(model)).max() <= ACT_SCALE + 1e-6  # the edited graph on the CPU: within one step
    assert np.abs(on_htp_as_exported - cpu(exported)).max() > ACT_SCALE + 1e-6  # the exported one: further off


@pytest.mark.htp
@pytest.mark.parametrize("kind,accepted", [("int8 symmetric", True), ("uint8 asymmetric", False),
                                           ("int8 asymmetric", False)])
def test_the_htp_takes_per_channel_conv_weights_only_symmetric(kind, accepted):
    """HTP v75 through the QNN EP (onnxruntime-qnn 2.7.0): backendValidateOpConfig refuses a Conv whose
    per-channel weights have a zero point, whether stored as int8 or as uint8 — so asymmetric per-channel
    weights (0.994 cosine on deep-sort's MobileNetV2 in the CPU simulation) cannot be deployed by re-typing
    them; onnxruntime's own per-channel weights are symmetric (uint8, zero point 128)."""
    model = conv_graph("Clip", weight_kind=kind)
    drop_fused_activation_quantizers(model)
    if accepted:
        out = _htp_session(model).run(None, {"x": X})[0]
        assert np.abs(out - cpu(model)).max() <= ACT_SCALE + 1e-6
    else:
        with pytest.raises(Exception, match="not selected by that EP|Unsupported|FAIL"):
            _htp_session(model)
