"""gelu-form: written-out erf GELU becomes one Gelu op."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ._helpers import (F, assert_rejected_then_full, const, h, model, ops, probe, quantize_qdq, rand, rewritten, same_numerics)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def _gelu(variant, opset=17):
    k = math.sqrt(2) if variant in "AC" else 1 / math.sqrt(2)
    arg = h.make_node("Div" if variant in "AC" else "Mul", ["x1", "k"], ["a"])
    tail = {"A": [h.make_node("Mul", ["x1", "c"], ["d"]), h.make_node("Mul", ["d", "half"], ["y"])],
            "B": [h.make_node("Mul", ["c", "half"], ["d"]), h.make_node("Mul", ["x1", "d"], ["y"])],
            "C": [h.make_node("Mul", ["half", "x1"], ["d"]), h.make_node("Mul", ["d", "c"], ["y"])]}[variant]
    nodes = [h.make_node("MatMul", ["x", "w"], ["x1"]), arg, h.make_node("Erf", ["a"], ["b"]),
             h.make_node("Add", ["one", "b"], ["c"]), *tail]
    return model(nodes, [("x", F, [1, 8, 16])], [("y", F)],
                 [const("w", rand(16, 16, scale=0.3)), const("k", np.array(k, np.float32)),
                  const("one", np.array(1.0, np.float32)), const("half", np.array(0.5, np.float32))], opset=opset)


@pytest.mark.parametrize("variant,opset", [("A", 17), ("B", 17), ("C", 17), ("A", 20)])
def test_gelu_variants_become_one_op(variant, opset):
    m = _gelu(variant, opset)
    out, n = rewritten(m, "gelu-form")
    assert n == 1 and ops(out) == ["MatMul", "Gelu"]
    assert (out.graph.node[1].domain == "com.microsoft") == (opset < 20)
    assert same_numerics(m, out, {"x": rand(1, 8, 16)}, atol=1e-5)


@pytest.mark.htp
def test_gelu_qdq_erf_rejected_then_placed(tmp_path):
    m = _gelu("A")
    out, _ = rewritten(m, "gelu-form")
    feeds = [{"x": rand(1, 8, 16)} for _ in range(4)]
    assert probe(m, tmp_path).full  # float: the EP fuses the erf chain itself
    assert_rejected_then_full(quantize_qdq(m, feeds, tmp_path), quantize_qdq(out, feeds, tmp_path), tmp_path)
