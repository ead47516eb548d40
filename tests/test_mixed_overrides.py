"""Mixed precision with our own ranges: a 16-bit activation next to tensors that carry a range
override (percentile / mse) must give a graph onnxruntime's quantizer accepts. onnxruntime's QNN
mixed-precision fixer makes the neighbours of a 16-bit tensor 16-bit producers too, and refused
the whole override set when one of them already had a (range-only, so 8-bit) entry: "Desired
producer quant_type for … doesn't match existing type" (basic-pitch's int16-localized candidate)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from bot.stages.quantize import QuantSettings, quantize_with_ort, sixteen_bit_neighbours
from tests.conftest import save_image_graph


def _chain(path):
    rng = np.random.RandomState(0)
    inits = [numpy_helper.from_array(rng.randn(4, 4, 3, 3).astype(np.float32) * 0.3, f"w{i}") for i in range(3)]
    inits.append(numpy_helper.from_array(np.array(0.5, np.float32), "k"))
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1], name="conv0"),
             helper.make_node("Add", ["c0", "k"], ["s0"], name="add0"),
             helper.make_node("Conv", ["s0", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Add", ["c1", "k"], ["s1"], name="add1"),
             helper.make_node("Conv", ["s1", "w2"], ["y"], pads=[1, 1, 1, 1], name="conv2")]
    return save_image_graph(path, nodes, inits, "chain")


def test_the_neighbours_are_what_onnxruntime_makes_16_bit(tmp_path):
    m = _chain(tmp_path / "m.onnx")
    # c1 is 16-bit: onnxruntime gives add1 (its reader) a 16-bit output too; s0, which conv1
    # reads, stays an 8-bit output converted to 16 bits for conv1
    assert sixteen_bit_neighbours(m, {"c1"}) == {"s1"}
    assert sixteen_bit_neighbours(m, set()) == set()


@pytest.mark.parametrize("method", ["percentile", "mse"])
def test_a_16_bit_tensor_among_range_overrides_quantizes_and_runs(tmp_path, method):
    src = tmp_path / "m.onnx"
    _chain(src)
    rng = np.random.RandomState(1)
    calib = [{"x": rng.randn(1, 4, 8, 8).astype(np.float32)} for _ in range(4)]
    out = tmp_path / "q.onnx"
    quantize_with_ort(src, out, tmp_path, calib,
                      QuantSettings(precision="w8a8", calibrate_method=method, tensor_types={"c1": "QUInt16"}))
    q = onnx.load(str(out))
    zp16 = {n.input[0] for n in q.graph.node if n.op_type == "QuantizeLinear"
            for i in q.graph.initializer if i.name == n.input[2] and i.data_type == TensorProto.UINT16}
    assert "c1" in zp16
    feed = calib[0]
    ref = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    assert float(np.ravel(ref) @ np.ravel(got) / (np.linalg.norm(ref) * np.linalg.norm(got))) > 0.99
