"""The optimize stage keeps the graph unsimplified when onnxslim returns an invalid one (found on
Whisper's decoder step: a fusion removed a Mul whose output a Reshape still read)."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from bot.stages.optimize import slim


def _graph(nodes) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_a_broken_simplification_is_refused(monkeypatch):
    import onnxslim

    good = _graph([helper.make_node("Mul", ["x", "two"], ["m"]), helper.make_node("Relu", ["m"], ["y"])])
    # what onnxslim returned for Whisper: the consumer left reading an output nobody produces
    monkeypatch.setattr(onnxslim, "slim", lambda m: _graph([helper.make_node("Relu", ["m"], ["y"])]))
    out, why = slim(good)
    assert [n.op_type for n in out.graph.node] == ["Mul", "Relu"]
    assert why and "invalid graph" in why and "kept it unsimplified" in why


def test_a_valid_simplification_is_kept():
    model = _graph([helper.make_node("Identity", ["x"], ["i"]), helper.make_node("Relu", ["i"], ["y"])])
    out, why = slim(model)
    assert why is None and [n.op_type for n in out.graph.node] == ["Relu"]  # the Identity is gone
