"""layernorm-form: written-out LayerNorm becomes LayerNormalization (this EP places both forms; the rewrite and numerics are tested)."""

from __future__ import annotations

import numpy as np
import pytest

from ._helpers import F, const, h, model, ops, rand, rewritten, same_numerics

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.mark.parametrize("opset,square", [(17, "Pow"), (18, "Mul")])
def test_layernorm_chain_becomes_layernormalization(opset, square):
    def mean(i, o):
        return (h.make_node("ReduceMean", [i, "ax"], [o]) if opset >= 18
                else h.make_node("ReduceMean", [i], [o], axes=[-1]))
    sq = h.make_node("Pow", ["d", "two"], ["p"]) if square == "Pow" else h.make_node("Mul", ["d", "d"], ["p"])
    nodes = [mean("x", "m"), h.make_node("Sub", ["x", "m"], ["d"]), sq, mean("p", "v"),
             h.make_node("Add", ["v", "eps"], ["ve"]), h.make_node("Sqrt", ["ve"], ["s"]),
             h.make_node("Div", ["d", "s"], ["n"]), h.make_node("Mul", ["n", "g"], ["ng"]),
             h.make_node("Add", ["ng", "b"], ["y"])]
    inits = [const("eps", np.array(1e-5, np.float32)), const("g", rand(16)), const("b", rand(16))]
    inits += [const("two", np.array(2.0, np.float32))] if square == "Pow" else []
    inits += [const("ax", np.array([-1], np.int64))] if opset >= 18 else []
    m = model(nodes, [("x", F, [1, 8, 16])], [("y", F)], inits, opset=opset)
    out, n = rewritten(m, "layernorm-form")
    assert n == 1 and ops(out) == ["LayerNormalization"]
    assert same_numerics(m, out, {"x": rand(1, 8, 16, scale=3)}, atol=1e-4)


def test_layernorm_over_other_axis_left_alone():
    nodes = [h.make_node("ReduceMean", ["x"], ["m"], axes=[1]), h.make_node("Sub", ["x", "m"], ["d"]),
             h.make_node("Mul", ["d", "d"], ["p"]), h.make_node("ReduceMean", ["p"], ["v"], axes=[1]),
             h.make_node("Add", ["v", "eps"], ["ve"]), h.make_node("Sqrt", ["ve"], ["s"]),
             h.make_node("Div", ["d", "s"], ["n"]), h.make_node("Mul", ["n", "g"], ["ng"]),
             h.make_node("Add", ["ng", "b"], ["y"])]
    m = model(nodes, [("x", F, [1, 16, 16])], [("y", F)],
              [const("eps", np.array(1e-5, np.float32)), const("g", rand(16)), const("b", rand(16))])
    assert rewritten(m, "layernorm-form")[1] == 0
