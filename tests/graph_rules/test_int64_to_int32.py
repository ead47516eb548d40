"""int64-to-int32: int64 indices and index Casts become int32 (this EP places int64; the rewrite and numerics are tested)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from ._helpers import F, I64, RNG, const, h, model, rand, rewritten, same_numerics

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def test_int64_indices_and_index_casts_become_int32():
    m = model([h.make_node("Gather", ["x", "ix"], ["g"], axis=1), h.make_node("Cast", ["p"], ["pi"], to=I64),
               h.make_node("GatherElements", ["g", "pi"], ["y"], axis=1)],
              [("x", F, [1, 8, 4]), ("p", F, [1, 3, 4])], [("y", F)], [const("ix", np.array([0, -1, 5], np.int64))])
    out, n = rewritten(m, "int64-to-int32")
    assert n == 2
    assert not any(t.data_type == onnx.TensorProto.INT64 for t in out.graph.initializer)
    assert [a.i for x in out.graph.node if x.op_type == "Cast" for a in x.attribute] == [onnx.TensorProto.INT32]
    feeds = {"x": rand(1, 8, 4), "p": RNG.integers(0, 3, (1, 3, 4)).astype(np.float32)}
    assert same_numerics(m, out, feeds, atol=0)


def test_int64_shape_inputs_untouched():
    m = model([h.make_node("Reshape", ["x", "s"], ["y"])], [("x", F, [2, 6])], [("y", F)],
              [const("s", np.array([3, 4], np.int64))])
    assert rewritten(m, "int64-to-int32")[1] == 0
