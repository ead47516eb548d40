"""layernorm-last-axis: LayerNormalization over several trailing axes, refused by the HTP, flattened to the last axis."""

from __future__ import annotations

import pytest

from ._helpers import F, const, h, model, ops, probe, rand, rewritten, same_numerics

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def _ln(axis, shape, beta=True):
    tail = shape[axis:]
    inits = [const("g", rand(*tail, scale=0.5, loc=1.0))] + ([const("b", rand(*tail, scale=0.3))] if beta else [])
    node = h.make_node("LayerNormalization", ["x", "g"] + (["b"] if beta else []), ["y"], axis=axis, epsilon=1e-5)
    return model([node], [("x", F, list(shape))], [("y", F)], inits)


@pytest.mark.htp
def test_layernorm_over_two_axes_refused_then_flattened_and_placed(tmp_path):
    m = _ln(1, (1, 8, 16))
    out, n = rewritten(m, "layernorm-last-axis")
    assert n == 1 and ops(out) == ["Reshape", "LayerNormalization", "Reshape"]
    assert same_numerics(m, out, {"x": rand(1, 8, 16, scale=2, loc=1)}, atol=1e-5)
    p0, p1 = probe(m, tmp_path), probe(out, tmp_path)
    assert [(r.op, "last axis" in r.reason) for r in p0.rejected] == [("LayerNormalization", True)]
    assert p1.full, [(r.op, r.reason) for r in p1.rejected]


@pytest.mark.parametrize("axis,shape,beta", [(-2, (2, 4, 6), False), (1, (1, 3, 4, 5), True)])
def test_layernorm_last_axis_forms(axis, shape, beta):
    m = _ln(axis, shape, beta)
    out, n = rewritten(m, "layernorm-last-axis")
    assert n == 1 and out.graph.node[1].op_type == "LayerNormalization"
    assert same_numerics(m, out, {"x": rand(*shape, scale=2)}, atol=1e-5)


def test_layernorm_already_over_last_axis_left_alone():
    assert rewritten(_ln(-1, (1, 8, 16)), "layernorm-last-axis")[1] == 0
    assert rewritten(_ln(2, (1, 8, 16)), "layernorm-last-axis")[1] == 0
