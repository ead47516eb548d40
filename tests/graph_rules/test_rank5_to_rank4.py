"""rank5-to-rank4: Reshape→Transpose→Reshape through rank ≥5 folded to the lowest rank."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from ._helpers import F, assert_rejected_then_full, const, h, model, rand, rewritten, same_numerics

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def _chain(xs, s1, perm, s2):
    return model([h.make_node("Reshape", ["x", "s1"], ["a"]), h.make_node("Transpose", ["a"], ["b"], perm=perm),
                  h.make_node("Reshape", ["b", "s2"], ["y"])], [("x", F, xs)], [("y", F)],
                 [const("s1", np.array(s1, np.int64)), const("s2", np.array(s2, np.int64))])


def _max_rank(m):
    m = onnx.shape_inference.infer_shapes(m)
    return max(len(v.type.tensor_type.shape.dim) for v in m.graph.value_info)


@pytest.mark.htp
def test_rank6_space_to_depth_chain_folded_and_placed(tmp_path):
    m = _chain([1, 4, 8, 8], [1, 4, 4, 2, 4, 2], [0, 1, 3, 5, 2, 4], [1, 16, 4, 4])
    out, n = rewritten(m, "rank5-to-rank4")
    assert n == 1 and _max_rank(out) == 5
    assert same_numerics(m, out, {"x": rand(1, 4, 8, 8)}, atol=0)
    p0, _ = assert_rejected_then_full(m, out, tmp_path, "Reshape")
    assert any("Failed to add node" in r.reason for r in p0.rejected)


def test_channel_shuffle_folded_to_rank3():
    m = _chain([1, 8, 6, 6], [1, 2, 4, 6, 6], [0, 2, 1, 3, 4], [1, 8, 6, 6])
    out, n = rewritten(m, "rank5-to-rank4")
    assert n == 1 and _max_rank(out) == 3
    assert same_numerics(m, out, {"x": rand(1, 8, 6, 6)}, atol=0)
