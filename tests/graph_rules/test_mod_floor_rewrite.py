"""mod-floor-rewrite: float Mod(fmod=1) rewritten with Floor; integer Mod left alone."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from ._helpers import F, assert_rejected_then_full, const, h, model, ops, rand, rewritten, same_numerics

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.mark.htp
def test_float_fmod_rewritten_and_placed(tmp_path):
    m = model([h.make_node("Mod", ["x", "c"], ["y"], fmod=1)], [("x", F, [1, 64])], [("y", F)],
              [const("c", np.array([0.75], np.float32))])
    out, n = rewritten(m, "mod-floor-rewrite")
    assert n == 1 and "Mod" not in ops(out)
    assert same_numerics(m, out, {"x": rand(1, 64, scale=5)}, atol=1e-5)
    p0, _ = assert_rejected_then_full(m, out, tmp_path, "Mod")
    assert "fmod" in p0.rejected[0].reason


def test_integer_mod_left_alone():
    m = model([h.make_node("Mod", ["x", "c"], ["y"])], [("x", onnx.TensorProto.INT32, [1, 8])],
              [("y", onnx.TensorProto.INT32)], [const("c", np.array([3], np.int32))])
    assert rewritten(m, "mod-floor-rewrite")[1] == 0
