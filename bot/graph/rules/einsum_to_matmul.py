"""einsum-to-matmul: two-operand Einsum → Transpose / Reshape / MatMul / Reshape / Transpose.

Evidence (onnxruntime-qnn 2.7, HTP v75, float graph): the EP places the matmul-shaped equations
(`bij,bjk->bik`, `bhid,bhjd->bhij`, `bnc,bmc->bnm`, `ij,jk->ik`) but rejects others, e.g.
`Einsum unsupported equation: bchw,bchw->bc` and `Einsum unsupported equation: bchw,bkc->bkhw`.
The QAIRT converters have no Einsum at all (`No translation registered for op type onnx_einsum`),
so the rule rewrites every two-operand Einsum it can express as one batched MatMul: letters shared
by both operands and the output are batch, shared letters missing from the output are contracted,
the rest are free. Operands are brought to [B, M, K] and [B, K, N] (rank 3, whatever the input
rank), multiplied, then reshaped and transposed to the output order. Diagonals (a letter repeated
in one operand), ellipses and letters summed away in one operand only are left alone.
"""

from __future__ import annotations

import numpy as np
from onnxscript.rewriter import pattern

from bot.graph.irutil import attr, static_shape
from bot.graph.rule import GraphRule


def _plan(eq: str, sa, sb):
    if "..." in eq or "->" not in eq:
        return None
    lhs, out = eq.replace(" ", "").split("->")
    ops = lhs.split(",")
    if len(ops) != 2:
        return None
    a, b = ops
    if len(set(a)) != len(a) or len(set(b)) != len(b) or len(set(out)) != len(out):
        return None
    if len(a) != len(sa) or len(b) != len(sb):
        return None
    if any(c not in a and c not in b for c in out) or any(c not in out and not (c in a and c in b) for c in a + b):
        return None  # letters summed in one operand only: not handled
    da, db = dict(zip(a, sa)), dict(zip(b, sb))
    if any(da[c] != db[c] for c in set(a) & set(b)):
        return None  # broadcasting inside einsum: not handled
    batch = [c for c in out if c in a and c in b]
    contr = [c for c in a if c in b and c not in out]
    fa = [c for c in a if c not in b]
    fb = [c for c in b if c not in a]
    size = lambda cs: int(np.prod([{**da, **db}[c] for c in cs])) if cs else 1  # noqa: E731
    return dict(
        perm_a=[a.index(c) for c in batch + fa + contr], shape_a=[size(batch), size(fa), size(contr)],
        perm_b=[b.index(c) for c in batch + contr + fb], shape_b=[size(batch), size(contr), size(fb)],
        mid=[{**da, **db}[c] for c in batch + fa + fb],
        perm_out=[(batch + fa + fb).index(c) for c in out],
    )


def _target(op, a, b):
    return op.Einsum(a, b, _outputs=["y"])


def _check(ctx, a, b, y, **_):
    node = y.producer()
    sa, sb = static_shape(a), static_shape(b)
    return sa is not None and sb is not None and _plan(attr(node, "equation", ""), sa, sb) is not None


def _replace(op, a, b, y, **_):
    p = _plan(attr(y.producer(), "equation"), static_shape(a), static_shape(b))

    def prep(x, perm, shape):
        if perm != sorted(perm):
            x = op.Transpose(x, perm=perm)
        return op.Reshape(x, op.Constant(value_ints=shape))

    m = op.MatMul(prep(a, p["perm_a"], p["shape_a"]), prep(b, p["perm_b"], p["shape_b"]))
    m = op.Reshape(m, op.Constant(value_ints=p["mid"]))
    if p["perm_out"] != sorted(p["perm_out"]):
        m = op.Transpose(m, perm=p["perm_out"])
    return m


PATTERN = pattern.RewriteRule(_target, _replace, _check, name="einsum-to-matmul")


RULE = GraphRule(
    id="einsum-to-matmul",
    summary="two-operand Einsum → Transpose/Reshape/MatMul (HTP rejects non-matmul equations; QAIRT has no Einsum)",
    ops=("Einsum",),
    reasons=(),  # any rejection of an Einsum
    patterns=(PATTERN,),
)
