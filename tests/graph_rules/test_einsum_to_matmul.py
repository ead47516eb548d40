"""einsum-to-matmul: two-operand Einsum becomes Transpose/Reshape/MatMul."""

from __future__ import annotations

import pytest

from ._helpers import F, assert_rejected_then_full, h, model, ops, rand, rewritten, same_numerics

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.mark.htp
@pytest.mark.parametrize("eq,sa,sb", [("bchw,bchw->bc", [1, 4, 8, 8], [1, 4, 8, 8]),
                                      ("bchw,bkc->bkhw", [1, 4, 8, 8], [1, 3, 4])])
def test_einsum_rejected_equations_become_matmul(tmp_path, eq, sa, sb):
    m = model([h.make_node("Einsum", ["a", "b"], ["y"], equation=eq)], [("a", F, sa), ("b", F, sb)], [("y", F)])
    out, n = rewritten(m, "einsum-to-matmul")
    assert n == 1 and "Einsum" not in ops(out) and "MatMul" in ops(out)
    assert same_numerics(m, out, {"a": rand(*sa), "b": rand(*sb)})
    p0, _ = assert_rejected_then_full(m, out, tmp_path, "Einsum")
    assert "Einsum unsupported equation" in p0.rejected[0].reason


@pytest.mark.parametrize("eq,sa,sb", [("bhid,bhjd->bhij", [1, 2, 8, 16], [1, 2, 8, 16]),
                                      ("bhij,bhjd->bhid", [1, 2, 8, 8], [1, 2, 8, 16]),
                                      ("i,j->ij", [3], [4])])
def test_einsum_attention_forms(eq, sa, sb):
    m = model([h.make_node("Einsum", ["a", "b"], ["y"], equation=eq)], [("a", F, sa), ("b", F, sb)], [("y", F)])
    out, n = rewritten(m, "einsum-to-matmul")
    assert n == 1 and "Einsum" not in ops(out)
    assert same_numerics(m, out, {"a": rand(*sa), "b": rand(*sb)})


def test_einsum_leaves_unsupported_forms():
    m = model([h.make_node("Einsum", ["a"], ["y"], equation="ii->i")], [("a", F, [3, 3])], [("y", F)])
    assert rewritten(m, "einsum-to-matmul")[1] == 0
