"""layernorm-moments-form: a layer norm whose variance is E[x²] − E[x]² → one LayerNormalization.

tf2onnx writes flax / Keras layer norms (magika's, for one) from their moments: mean = E[x]
(ReduceMean, or ReduceSum · 1/N), variance = E[x²] − E[x]² (clipped at 0 by a Max), then
Sqrt(var + ε), a Reciprocal (or a Div), γ and β; with keepdims=0 the statistics are reshaped back
before they broadcast. Quantized, that variance is the difference of two large, nearly equal
tensors, each with its own 8- or 16-bit scale: the difference is mostly rounding error, the Max
clips it to 0 and Sqrt(ε) blows the output up (magika fails at w8a8, w8a16 and even fp16, with
localization naming the Sqrt). LayerNormalization computes the variance inside one op.

The replacement is exact in float (the same statistics over the same axes). It is already in the
form the HTP places: the normalised axes are moved last with a Transpose when they are not
(magika normalises [1, 512, 256] over axis 1) and flattened into one with a Reshape when there
are several, so LayerNormalization always runs over axis −1 (see `layernorm-last-axis`). γ and β
must vary only along the normalised axes (they do in a layer norm).
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx_ir as ir
from onnx import version_converter
from onnxscript.rewriter import pattern

from bot.graph.irutil import attr, const, make_constant, opset, static_shape, to_ir, to_proto
from bot.graph.rule import GraphRule


def _pattern(mean_sum: bool, square_pow: bool, clip: bool, reshaped: bool, norm: str, axes_input: bool,
             swap: bool):
    """One written-out form. mean_sum: ReduceSum·(1/N) instead of ReduceMean; clip: Max(0, var);
    reshaped: keepdims=0 statistics reshaped back; norm: how 1/σ, γ and the deviation combine;
    swap: the deviation is the second operand of its Mul. Constants are second operands (the
    graph is put in that order first), so no commuted variants are needed."""
    def target(op, x, gamma, beta, eps, ax1, ax2, n1, n2, two, c0, s1, s2):
        def mean(v, ax, n, name):
            if mean_sum:
                return op.Mul(op.ReduceSum(v, ax, _allow_other_attributes=True, _outputs=[name]), n)
            if axes_input:
                return op.ReduceMean(v, ax, _allow_other_attributes=True, _outputs=[name])
            return op.ReduceMean(v, _allow_other_attributes=True, _outputs=[name])

        def square(v):
            return op.Pow(v, two) if square_pow else op.Mul(v, v)

        m = mean(x, ax1, n1, "r1")
        var = op.Sub(mean(square(x), ax2, n2, "r2"), square(m))
        if clip:
            var = op.Max(var, c0)
        if reshaped:
            var, m = op.Reshape(var, s1, _allow_other_attributes=True), op.Reshape(m, s2, _allow_other_attributes=True)
        std = op.Sqrt(op.Add(var, eps))
        d = op.Sub(x, m)
        def times(a, b):
            return op.Mul(b, a) if swap else op.Mul(a, b)
        if norm == "recip-gamma":  # magika: (x − m) · (1/σ · γ) + β
            y = times(d, op.Mul(op.Reciprocal(std), gamma))
        elif norm == "recip":  # (x − m) · 1/σ · γ + β
            y = op.Mul(times(d, op.Reciprocal(std)), gamma)
        else:  # (x − m) / σ · γ + β
            y = op.Mul(op.Div(d, std), gamma)
        return op.Add(y, beta)
    return target


def _scalar(v, want=None, tol=1e-6):
    c = const(v)
    if c is None or c.size != 1:
        return None
    s = float(c.reshape(-1)[0])
    if want is not None and abs(s - want) > tol * max(1.0, abs(want)):
        return None
    return s


def _axes(node: ir.Node, rank: int) -> tuple[int, ...] | None:
    ax = const(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else attr(node, "axes")
    if ax is None:
        return None
    return tuple(sorted({int(a) % rank for a in np.atleast_1d(ax)}))


def _param_on_axes(p, shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray | None:
    """γ or β as an array over the normalised axes only (in axis order), or None if it varies elsewhere."""
    c = const(p)
    if c is None or c.ndim > len(shape):
        return None
    full = c.reshape((1,) * (len(shape) - c.ndim) + c.shape)
    if any(full.shape[i] != 1 for i in range(len(shape)) if i not in axes):
        return None
    try:
        full = np.broadcast_to(full, tuple(shape[i] if i in axes else 1 for i in range(len(shape))))
    except ValueError:
        return None
    return full.reshape([shape[i] for i in axes])


def _check(ctx, x, gamma, beta, eps, r1, r2, n1=None, n2=None, two=None, c0=None, s1=None, s2=None, **_):
    shape = static_shape(x)
    if shape is None or x.dtype not in (ir.DataType.FLOAT, ir.DataType.FLOAT16):
        return False
    rank = len(shape)
    a1, a2 = _axes(r1.producer(), rank), _axes(r2.producer(), rank)
    if not a1 or a1 != a2:
        return False
    keep = int(attr(r1.producer(), "keepdims", 1)), int(attr(r2.producer(), "keepdims", 1))
    kept_shape = tuple(1 if i in a1 else d for i, d in enumerate(shape))
    if s1 is not None:  # keepdims=0 statistics, reshaped back to the kept shape before they broadcast
        if keep != (0, 0) or any(tuple(int(v) for v in np.atleast_1d(const(s))) != kept_shape
                                 for s in (s1, s2) if const(s) is not None) or const(s1) is None or const(s2) is None:
            return False
    elif keep != (1, 1):
        return False
    if n1 is not None:
        count = float(np.prod([shape[i] for i in a1]))
        if _scalar(n1, 1.0 / count) is None or _scalar(n2, 1.0 / count) is None:
            return False
    if two is not None and _scalar(two, 2.0) is None:
        return False
    if c0 is not None and (_scalar(c0) is None or _scalar(c0) > 0.0):
        return False  # Max(var, c ≤ 0) changes nothing a true variance (≥ 0) can take
    e = _scalar(eps)
    if e is None or e < 0:
        return False
    return _param_on_axes(gamma, shape, a1) is not None and _param_on_axes(beta, shape, a1) is not None


def _replace(op, x, gamma, beta, eps, r1, **_):
    shape = static_shape(x)
    rank = len(shape)
    axes = _axes(r1.producer(), rank)
    dt = np.float16 if x.dtype == ir.DataType.FLOAT16 else np.float32
    n = int(np.prod([shape[i] for i in axes]))
    g = _param_on_axes(gamma, shape, axes).reshape(n).astype(dt)
    b = _param_on_axes(beta, shape, axes).reshape(n).astype(dt)
    rest = [i for i in range(rank) if i not in axes]
    perm = rest + list(axes)
    v = x
    if perm != list(range(rank)):
        v = op.Transpose(v, perm=perm)
    moved = [shape[i] for i in perm]
    if len(axes) > 1:
        v = op.Reshape(v, make_constant(op, moved[: len(rest)] + [n], np.int64))
    v = op.LayerNormalization(v, op.Constant(value=ir.tensor(g)), op.Constant(value=ir.tensor(b)), axis=-1,
                              epsilon=_scalar(eps))
    if len(axes) > 1:
        v = op.Reshape(v, make_constant(op, moved, np.int64))
    if perm != list(range(rank)):
        v = op.Transpose(v, perm=[int(i) for i in np.argsort(perm)])
    return v


def rules_for(opset_version: int, present: set[str]) -> list[pattern.RewriteRule]:
    """The forms whose ops the graph has at all: every form is tried in every commuted order, so
    skipping impossible ones keeps the rule fast on large graphs."""
    axes_input = opset_version >= 18
    out = []
    for ms, sp, cl, rs, nm, sw in itertools.product((True, False), (False, True), (True, False), (True, False),
                                                     ("recip-gamma", "recip", "div"), (False, True)):
        if nm == "div" and sw:
            continue
        need = {"ReduceSum" if ms else "ReduceMean", "Sqrt", "Sub"} | ({"Pow"} if sp else set())
        need |= ({"Max"} if cl else set()) | ({"Reshape"} if rs else set()) | ({"Div"} if nm == "div" else {"Reciprocal"})
        if not need <= present:
            continue
        out.append(pattern.RewriteRule(_pattern(ms, sp, cl, rs, nm, axes_input, sw), _replace, _check,
                                       name=f"layernorm-moments-{int(ms)}{int(sp)}{int(cl)}{int(rs)}{int(sw)}-{nm}"))
    return out


def rewrite(model):
    present = {n.op_type for n in model.graph.node}
    if not {"Sqrt", "Sub"} <= present:
        return model, 0
    src = model
    if opset(model) < 17:  # LayerNormalization is opset 17; tf2onnx often writes 13–15
        src = version_converter.convert_version(model, 17)
    rules = rules_for(opset(src), present)
    if not rules:
        return model, 0
    m = to_ir(src)
    _constants_second(m.graph)
    count = pattern.RewriteRuleSet(rules).apply_to_model(m)
    return (to_proto(m), count) if count else (model, 0)


def _constants_second(graph: ir.Graph) -> None:
    """Commutative binary ops with one constant operand get it second (the patterns' order)."""
    for node in graph:
        if node.op_type in ("Add", "Mul", "Max", "Min") and node.domain == "" and len(node.inputs) == 2:
            a, b = node.inputs
            if const(a) is not None and const(b) is None:
                node.replace_input_with(0, b)
                node.replace_input_with(1, a)


RULE = GraphRule(
    id="layernorm-moments-form",
    summary="layer norm from moments (var = E[x²] − E[x]², Sqrt, Reciprocal/Div, γ, β; tf2onnx) → one "
            "LayerNormalization over the last axis (Transpose/Reshape around it when needed); quantized, "
            "E[x²] − E[x]² is rounding error and Sqrt(ε) blows it up",
    ops=("Sqrt", "Reciprocal"),  # where device-side localization lands in this form
    reasons=(),
    rewrite=rewrite,
    device_numerics=True,
)
