"""magnitude-form: `Sqrt(a² + b²)` (a complex magnitude, e.g. an STFT's) → `hi · Sqrt(1 + (lo/hi)²)`,
hi = max(|a|, |b|), lo = min(|a|, |b|): the squares never exist as tensors.

Evidence (silero-vad 6.2.3, its in-graph STFT: a fixed-basis Conv, then sqrt(re² + im²); CPU QDQ
simulation at w8a16 with the definition's own data, `docs/trained-zoo-notes.md`): the Conv's output
keeps 40 dB SQNR on a clip's near-silent first step (|x| ≤ 0.012) but each square falls to 0.6–1.4 dB
there. A square doubles the dynamic range in dB, and its one quantization range is set by speech
(re² up to hundreds), so a quiet frame's re² lies below one 16-bit step and rounds to zero; the LSTM
state after it is off by more than its own size (new_state cosine 0.59 on that step, pooled 0.995).
Rewritten, every tensor is linear in the signal (|a|, |b|, max, min, the magnitude) or bounded
([0, 1] ratio, [1, √2] factor), so it quantizes like the Conv's output: worst step 0.9995.

Exact in float: for hi > 0, hi·√(1 + lo²/hi²) = √(hi² + lo²) = √(a² + b²); a tiny ε in the
denominator keeps hi = 0 (digital silence) at 0 instead of 0·NaN. A square is `Pow(x, 2)` or
`Mul(x, x)`, either operand order of the Add.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern

from bot.graph.irutil import const
from bot.graph.rule import GraphRule, apply_rules

EPS = 1e-12  # below any magnitude a float32 STFT of real audio gives; fp16 reads it as 0 only where hi = 0 too


def _square(op, v, two, pow_form: bool):
    return op.Pow(v, two) if pow_form else op.Mul(v, v)


def _pattern(pow_a: bool, pow_b: bool):
    def target(op, a, b, two_a, two_b):
        return op.Sqrt(op.Add(_square(op, a, two_a, pow_a), _square(op, b, two_b, pow_b)))
    return target


def _is_two(v) -> bool:
    if v is None:
        return True  # the Mul form has no exponent
    c = const(v)
    return c is not None and c.size == 1 and float(c.reshape(-1)[0]) == 2.0


def _check(ctx, a, b, two_a=None, two_b=None, **_):
    floats = (ir.DataType.FLOAT, ir.DataType.FLOAT16)
    return a.dtype in floats and b.dtype in floats and _is_two(two_a) and _is_two(two_b)


def _replace(op, a, b, **_):
    dt = np.float16 if a.dtype == ir.DataType.FLOAT16 else np.float32
    aa, bb = op.Abs(a), op.Abs(b)
    hi, lo = op.Max(aa, bb), op.Min(aa, bb)
    r = op.Div(lo, op.Add(hi, op.Constant(value=ir.tensor(np.array(EPS, dt)))))
    return op.Mul(hi, op.Sqrt(op.Add(op.Mul(r, r), op.Constant(value=ir.tensor(np.array(1.0, dt))))))


def _rules() -> list[pattern.RewriteRule]:
    """Pow/Pow, Pow/Mul, Mul/Pow, Mul/Mul (the pattern's arguments must match its operands)."""
    def pp(op, a, b, two_a, two_b):
        return _pattern(True, True)(op, a, b, two_a, two_b)

    def pm(op, a, b, two_a):
        return _pattern(True, False)(op, a, b, two_a, None)

    def mp(op, a, b, two_b):
        return _pattern(False, True)(op, a, b, None, two_b)

    def mm(op, a, b):
        return _pattern(False, False)(op, a, b, None, None)

    return [pattern.RewriteRule(t, _replace, _check, name=f"magnitude-form-{t.__name__}") for t in (pp, pm, mp, mm)]


def rewrite(model):
    present = {n.op_type for n in model.graph.node}
    if "Sqrt" not in present or "Add" not in present or not present & {"Pow", "Mul"}:
        return model, 0
    return apply_rules(model, _rules(), commute=True)


RULE = GraphRule(
    id="magnitude-form",
    summary="Sqrt(a² + b²) → max(|a|,|b|)·Sqrt(1 + (min/max)²): exact, and no squared tensor, whose one "
            "quantization range (set by loud input) rounds quiet frames' squares to zero",
    ops=("Pow", "Mul"),  # where (CPU) localization puts the error: the squares
    reasons=(),
    rewrite=rewrite,
    quantization_numerics=True,
)
