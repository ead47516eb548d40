"""layernorm-form: written-out LayerNorm → one LayerNormalization (opset ≥ 17).

Matches ReduceMean → Sub → Pow 2 (or Mul by itself) → ReduceMean → Add ε → Sqrt → Div (or
Reciprocal·Mul) → Mul γ → Add β, over the last axis, with ReduceMean's axes as attribute
(opset ≤ 17) or input (≥ 18), and emits LayerNormalization(x, γ, β, axis=-1, epsilon=ε).

Evidence (onnxruntime-qnn 2.7, HTP v75): both the written-out chain and LayerNormalization are
placed, in float and in QDQ form (`get_qnn_qdq_config` + `quantize`), and on a tiny [1,8,16]
graph the two QDQ forms reach the same cosine (0.998), so on this EP the rule is not needed for
placement. It stays in the catalogue for older EPs and the SDK converters, and because one
LayerNormalization is one quantization unit that `get_qnn_qdq_config` has overrides for (its weight
kept at 8 bits under 16-bit activations, per-channel refused), where the written-out chain puts
Q/DQ on every intermediate (deviation, square, variance). onnxscript's own LayerNorm fusion only
matches the axes-as-input form (opset ≥ 18) without β, which is why this module has its own patterns.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern

from bot.graph.irutil import attr, const, opset, static_shape
from bot.graph.rule import GraphRule, apply_rules


def _pattern(axes_input: bool, square_pow: bool, divide: bool):
    def target(op, x, gamma, beta, eps, two, axes):
        def mean(v, name):
            if axes_input:
                return op.ReduceMean(v, axes, _allow_other_attributes=True, _outputs=[name])
            return op.ReduceMean(v, _allow_other_attributes=True, _outputs=[name])
        d = op.Sub(x, mean(x, "m1"))
        sq = op.Pow(d, two) if square_pow else op.Mul(d, d)
        std = op.Sqrt(op.Add(mean(sq, "m2"), eps))
        n = op.Div(d, std) if divide else op.Mul(d, op.Reciprocal(std))
        return op.Add(op.Mul(n, gamma), beta)
    return target


def _check(ctx, x, gamma, beta, eps, m1, m2, two=None, axes=None, **_):
    shape = static_shape(x)
    if shape is None or x.dtype not in (ir.DataType.FLOAT, ir.DataType.FLOAT16):
        return False
    if two is not None:
        t = const(two)
        if t is None or t.size != 1 or float(t.reshape(-1)[0]) != 2.0:
            return False
    e, g, b = const(eps), const(gamma), const(beta)
    if e is None or e.size != 1 or g is None or b is None:
        return False
    if g.shape[-1:] != (shape[-1],) or b.shape[-1:] != (shape[-1],) or g.size != shape[-1] or b.size != shape[-1]:
        return False
    rank = len(shape)
    for n in (m1.producer(), m2.producer()):
        if True:
            ax = const(n.inputs[1]) if len(n.inputs) > 1 and n.inputs[1] is not None else attr(n, "axes")
            if ax is None or [int(a) % rank for a in np.atleast_1d(ax)] != [rank - 1] or not attr(n, "keepdims", 1):
                return False
    return True


def _replace(op, x, gamma, beta, eps, **_):
    g = np.asarray(const(gamma)).reshape(-1)
    b = np.asarray(const(beta)).reshape(-1)
    dt = np.float16 if x.dtype == ir.DataType.FLOAT16 else np.float32
    return op.LayerNormalization(x, op.Constant(value=ir.tensor(g.astype(dt))), op.Constant(value=ir.tensor(b.astype(dt))),
                                 axis=-1, epsilon=float(const(eps).reshape(-1)[0]))


def rewrite(model):
    if opset(model) < 17:
        return model, 0
    rules = [pattern.RewriteRule(_pattern(ai, sp, dv), _replace, _check, name=f"layernorm-{ai}-{sp}-{dv}")
             for ai in (opset(model) >= 18,) for sp in (True, False) for dv in (True, False)]
    return apply_rules(model, rules, commute=True)


RULE = GraphRule(
    id="layernorm-form",
    summary="written-out LayerNorm (ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add) → LayerNormalization (opset ≥17)",
    ops=("ReduceMean", "Pow", "Sqrt", "Div", "LayerNormalization"),
    reasons=(),
    rewrite=rewrite,
)
