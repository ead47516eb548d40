"""Localization credits a layer's error to what it reads, also when onnxruntime folded the op before
it into a Q/DQ pair: PP-OCR's hard-swish `Clip(Add(x, 3), 0, 6)` loses the Add's own pair (the Clip's
range goes to the Add's output), so the Clip's input had no measured tensor, the Clip looked as if it
made all its error itself (drop measured from 60 dB) and int16-localized picked such layers first."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from bot.repair.localize import localize
from bot.stages.quantize import QuantSettings, quantize_with_ort
from tests.conftest import save_image_graph


def _hard_swish_block(path):
    rng = np.random.RandomState(0)
    inits = [numpy_helper.from_array(rng.randn(8, 4, 3, 3).astype(np.float32) * 0.5, "w0"),
             numpy_helper.from_array(rng.randn(4, 8, 3, 3).astype(np.float32) * 0.5, "w1"),
             numpy_helper.from_array(np.array(3.0, np.float32), "three"),
             numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
             numpy_helper.from_array(np.array(6.0, np.float32), "hi")]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c"], pads=[1, 1, 1, 1], name="conv0"),
             helper.make_node("Add", ["c", "three"], ["a"], name="add"),
             helper.make_node("Clip", ["a", "lo", "hi"], ["r"], name="clip"),
             helper.make_node("Mul", ["c", "r"], ["m"], name="mul"),
             helper.make_node("Conv", ["m", "w1"], ["y"], pads=[1, 1, 1, 1], name="conv1")]
    save_image_graph(path, nodes, inits, "hs")


def test_a_folded_input_is_traced_to_the_tensor_before_it(tmp_path):
    src, out = tmp_path / "m.onnx", tmp_path / "q.onnx"
    _hard_swish_block(src)
    rng = np.random.RandomState(1)
    feeds = [{"x": rng.randn(1, 4, 8, 8).astype(np.float32)} for _ in range(4)]
    quantize_with_ort(src, out, tmp_path, feeds, QuantSettings(precision="w8a8"))
    q_outputs = {o for n in onnx.load(str(out)).graph.node for o in n.output}
    assert "a_DequantizeLinear_Output" not in q_outputs, "onnxruntime kept the Add's pair: the case is not exercised"
    layers, _ = localize(src, out, feeds)
    by_name = {e.tensor: e for e in layers}
    clip = by_name["r"]
    assert clip.inputs == ("c",), clip
    # its drop is measured against the conv output it reads, not from 60 dB
    assert clip.sqnr_drop_db < 20, clip
    assert by_name["m"].inputs == ("c", "r")
