"""layernorm-last-axis: LayerNormalization over axes [k, r) with k < r−1 → Reshape · LayerNormalization(axis=−1) · Reshape.

ONNX's LayerNormalization normalises over every axis from `axis` to the last. The HTP refuses any
`axis` but the last (`QNN LayerNorm on HTP only supports normalization along the last axis`), which
is what torch exports for `nn.LayerNorm([C, W])` (axis=−2) and what `layernorm-moments-form`
produces for a norm over several trailing axes. Flattening the normalised axes into one is exact:
the same elements are averaged, γ and β are broadcast to those axes and flattened alike, and the
output is reshaped back. Only the first output (Y) may be used; the optional Mean / InvStdDev
outputs are per-row statistics whose shape would change.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern

from bot.graph.irutil import attr, const, make_constant, static_shape
from bot.graph.rule import GraphRule, apply_rules


def _target(op, x, gamma, beta):
    return op.LayerNormalization(x, gamma, beta, _allow_other_attributes=True, _outputs=["y"])


def _target_no_beta(op, x, gamma):
    return op.LayerNormalization(x, gamma, _allow_other_attributes=True, _outputs=["y"])


def _axis(node: ir.Node, rank: int) -> int:
    return int(attr(node, "axis", -1)) % rank


def _check(ctx, x, gamma, y, beta=None, **_):
    shape = static_shape(x)
    if shape is None or len(shape) < 2:
        return False
    node = y.producer()
    if len(node.outputs) > 1 and any(o is not None and (o.uses() or o.is_graph_output()) for o in node.outputs[1:]):
        return False
    k = _axis(node, len(shape))
    if k == len(shape) - 1:
        return False  # already over the last axis: nothing to move
    tail = shape[k:]
    for p in (gamma, beta):
        if p is None:
            continue
        c = const(p)
        if c is None:
            return False
        try:
            np.broadcast_to(c, tail)
        except ValueError:
            return False
    return True


def _replace(op, x, gamma, y, beta=None, **_):
    shape = static_shape(x)
    node = y.producer()
    k = _axis(node, len(shape))
    tail = shape[k:]
    n = int(np.prod(tail))
    dt = np.float16 if x.dtype == ir.DataType.FLOAT16 else np.float32
    g = np.broadcast_to(const(gamma), tail).reshape(n).astype(dt)
    b = (np.zeros(n, dt) if beta is None else np.broadcast_to(const(beta), tail).reshape(n).astype(dt))
    flat = op.Reshape(x, make_constant(op, list(shape[:k]) + [n], np.int64))
    ln = op.LayerNormalization(flat, op.Constant(value=ir.tensor(g)), op.Constant(value=ir.tensor(b)), axis=-1,
                               epsilon=float(attr(node, "epsilon", 1e-5)),
                               stash_type=int(attr(node, "stash_type", 1)))
    return op.Reshape(ln, make_constant(op, shape, np.int64))


PATTERNS = (pattern.RewriteRule(_target, _replace, _check, name="layernorm-last-axis"),
         pattern.RewriteRule(_target_no_beta, _replace, _check, name="layernorm-last-axis-no-beta"))


def rewrite(model):
    return apply_rules(model, list(PATTERNS))


RULE = GraphRule(
    id="layernorm-last-axis",
    summary="LayerNormalization over several trailing axes (axis ≠ −1) → Reshape · LayerNormalization(axis=−1) · "
            "Reshape; the HTP normalises along the last axis only",
    ops=("LayerNormalization",),
    reasons=("last axis",),
    rewrite=rewrite,
)
