"""gelu-form: erf GELU written out in elementary ops → one Gelu op.

Evidence (onnxruntime-qnn 2.7, HTP v75): a lone `Erf` is refused (`Operators of type `Erf` are
not supported by QNN EP.`). In a float graph the EP fuses the written-out erf GELU itself
(x·0.5·(1+erf(x/√2)) in every association tried: Div by √2 or Mul by 1/√2, the 0.5 applied
first or last), so float graphs place fully. After QDQ quantization (`get_qnn_qdq_config` +
`quantize`) every op of the chain sits between its own DequantizeLinear/QuantizeLinear, the
fusion no longer happens, and the Erf unit falls back to the CPU (3 nodes). A single `Gelu`
node — ONNX `Gelu` at opset ≥ 20, `com.microsoft.Gelu` below — is placed in both float and QDQ
form and is quantized as one unit. This is also the fusion `qnn_preprocess_model` applies.
"""

from __future__ import annotations

import math

from onnxscript.rewriter import pattern

from bot.graph.irutil import const, opset, to_ir, to_proto
from bot.graph.rule import GraphRule, apply_rules

_SQRT2 = math.sqrt(2.0)


def _is(v, x, tol=1e-3):
    c = const(v)
    return c is not None and c.size == 1 and abs(float(c.reshape(-1)[0]) - x) <= tol * max(1.0, abs(x))


def _pattern(arg_div: bool, outer: int):
    """One written-out form: erf argument x/√2 or x·(1/√2); 0.5 applied last, inside, or first."""
    def target(op, x, k, one, half):
        e = op.Add(op.Erf(op.Div(x, k) if arg_div else op.Mul(x, k)), one)
        if outer == 0:
            return op.Mul(op.Mul(x, e), half)
        if outer == 1:
            return op.Mul(x, op.Mul(e, half))
        return op.Mul(op.Mul(x, half), e)
    return target


def _make_check(arg_div: bool):
    def check(ctx, x, k, one, half, **_):
        return _is(one, 1.0) and _is(half, 0.5) and _is(k, _SQRT2 if arg_div else 1 / _SQRT2)
    return check


def _make_replace(ms_domain: bool):
    def _replace(op, x, **_):
        return op.Gelu(x, _domain="com.microsoft") if ms_domain else op.Gelu(x)
    return _replace


def rewrite(model):
    ms = opset(model) < 20
    rules = [pattern.RewriteRule(_pattern(d, o), _make_replace(ms), _make_check(d), name=f"gelu-form-{d}-{o}")
             for d in (True, False) for o in range(3)]
    out, count = apply_rules(model, rules, commute=True)
    if count and ms:
        m = to_ir(out)
        m.opset_imports.setdefault("com.microsoft", 1)
        out = to_proto(m)
    return out, count


RULE = GraphRule(
    id="gelu-form",
    summary="written-out erf GELU → one Gelu op (ONNX ≥20, else com.microsoft); the HTP refuses a bare Erf once QDQ splits the chain",
    ops=("Erf", "Gelu"),
    reasons=(),
    rewrite=rewrite,
)
