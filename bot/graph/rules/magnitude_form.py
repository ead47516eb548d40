"""magnitude-form: `Sqrt(a² + b²)` (a complex magnitude, e.g. an STFT's) → `hi · Sqrt(1 + (lo/hi)²)`,
hi = max(|a|, |b|), lo = min(|a|, |b|): the squares never exist as tensors. Also the two other forms
of the same thing: `Sqrt(ReduceSum(x², axis))` over an axis holding (re, im), and a log power
`Log(t² + ε)` → `2·Log(hypot(t, √ε))`, so no power spectrum is ever a tensor.

Evidence (silero-vad 6.2.3, its in-graph STFT: a fixed-basis Conv, then sqrt(re² + im²); CPU QDQ
simulation at w8a16 with the definition's own data, `docs/trained-zoo-notes.md`): the Conv's output
keeps 40 dB SQNR on a clip's near-silent first step (|x| ≤ 0.012) but each square falls to 0.6–1.4 dB
there. A square doubles the dynamic range in dB, and its one quantization range is set by speech
(re² up to hundreds), so a quiet frame's re² lies below one 16-bit step and rounds to zero; the LSTM
state after it is off by more than its own size (new_state cosine 0.59 on that step, pooled 0.995).
Rewritten, every tensor is linear in the signal (|a|, |b|, max, min, the magnitude) or bounded
([0, 1] ratio, [1, √2] factor), so it quantizes like the Conv's output: worst step 0.9995.

basic-pitch 0.4.0 (its in-graph CQT: (re, im) on an axis of 2, squared, summed, Sqrt, squared again,
10·log10(power + 1e-10)): the power spans 127 dB, no 16-bit grid holds it, and localization puts the
loss at the Log (one window's cosine 0.94, 31 dB worse than its input). Rewritten, the Log reads a
magnitude: a 16-bit linear grid (top / step = 65535) spans 96 dB of signal level as magnitudes but
only 48 dB as powers. CPU QDQ at w8a16, the whole graph: notes heard 4/4 (2/4 before).

Exact in float wherever hi ≥ 2⁻²⁴: hi·√(1 + lo²/hi²) = √(hi² + lo²) = √(a² + b²). The ratio's
denominator is Max(hi, 2⁻²⁴), fp16's smallest positive value, so digital silence (hi = lo = 0) gives
0, not 0/0, in float32 and in fp16 alike (an ε added to hi, 1e-12, is 0 in fp16, and a graph taken
to fp16 divided 0 by 0). Below 2⁻²⁴ the magnitude reads between hi and √2·hi (error < 2.5e-8).
Why not fp16's smallest normal, 2⁻¹⁴ = 6.1e-5: basic-pitch's CQT has bins that quiet, and that floor
moved its outputs by up to 0.012 in float32 (2⁻²⁴: 5e-7, the same as 1e-12 gave). The log form's
constant √ε bounds hi from below already: its floor is min(2⁻²⁴, √ε).
A square is `Pow(x, 2)` or `Mul(x, x)`, either operand order of the Add.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern

from bot.graph.irutil import attr, const, make_constant, static_shape
from bot.graph.rule import GraphRule, apply_rules

FP16_TINY = 2.0 ** -24  # fp16's smallest positive value (6e-8): a floor for the ratio's denominator that fp16 keeps


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


def _dtype(v):
    return np.float16 if v.dtype == ir.DataType.FLOAT16 else np.float32


def _hypot(op, a, b, dt, b_floor: float | None = None):
    """√(a² + b²) with no squared tensor: hi·√(1 + (lo/Max(hi, floor))²); `b_floor`: b is this constant > 0."""
    aa = op.Abs(a)
    bb = b if b_floor is not None else op.Abs(b)
    hi, lo = op.Max(aa, bb), op.Min(aa, bb)
    floor = FP16_TINY if b_floor is None else min(FP16_TINY, b_floor)
    r = op.Div(lo, op.Max(hi, make_constant(op, floor, dt)))
    return op.Mul(hi, op.Sqrt(op.Add(op.Mul(r, r), make_constant(op, 1.0, dt))))


def _replace(op, a, b, **_):
    return _hypot(op, a, b, _dtype(a))


def _pair_axis(x, axes) -> int | None:
    """The one axis a ReduceSum sums over, when x holds exactly (re, im) along it."""
    shape, ax = static_shape(x), const(axes)
    if shape is None or ax is None or ax.size != 1:
        return None
    k = int(ax.reshape(-1)[0]) % len(shape)
    return k if shape[k] == 2 else None


def _reduce_target(pow_form: bool):
    """basic-pitch's CQT: (re, im) stacked on an axis of 2, squared, ReduceSum over it, Sqrt."""
    def pow_t(op, x, axes, two):
        return op.Sqrt(op.ReduceSum(op.Pow(x, two), axes, _allow_other_attributes=True, _outputs=["s"]))

    def mul_t(op, x, axes):
        return op.Sqrt(op.ReduceSum(op.Mul(x, x), axes, _allow_other_attributes=True, _outputs=["s"]))
    return pow_t if pow_form else mul_t


def _reduce_check(ctx, x, axes, s, two=None, **_):
    return x.dtype in (ir.DataType.FLOAT, ir.DataType.FLOAT16) and _is_two(two) and _pair_axis(x, axes) is not None


def _reduce_replace(op, x, axes, s, **_):
    k = _pair_axis(x, axes)

    def part(i):
        return op.Slice(x, *(make_constant(op, [v], np.int64) for v in (i, i + 1, k)))
    m = _hypot(op, part(0), part(1), _dtype(x))
    if int(attr(s.producer(), "keepdims", 1)) == 0:
        m = op.Squeeze(m, make_constant(op, [k], np.int64))
    return m


def _log_target(pow_form: bool):
    """basic-pitch's log power: 10·log10(|X|² + 1e-10), the square of a magnitude plus a floor."""
    def pow_t(op, t, two, eps):
        return op.Log(op.Add(op.Pow(t, two), eps))

    def mul_t(op, t, eps):
        return op.Log(op.Add(op.Mul(t, t), eps))
    return pow_t if pow_form else mul_t


def _scalar(v) -> float | None:
    c = const(v)
    return float(c.reshape(-1)[0]) if c is not None and c.size == 1 else None


def _log_check(ctx, t, eps, two=None, **_):
    e = _scalar(eps)
    return t.dtype in (ir.DataType.FLOAT, ir.DataType.FLOAT16) and _is_two(two) and e is not None and e > 0


def _log_replace(op, t, eps, **_):
    """log(t² + ε) = 2·log √(t² + (√ε)²): exact, and the Log reads a magnitude, not a power."""
    dt = _dtype(t)
    root = float(np.sqrt(_scalar(eps)))
    return op.Mul(op.Log(_hypot(op, t, make_constant(op, root, dt), dt, b_floor=root)), make_constant(op, 2.0, dt))


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

    out = [pattern.RewriteRule(t, _replace, _check, name=f"magnitude-form-{t.__name__}") for t in (pp, pm, mp, mm)]
    for pow_form in (True, False):
        out.append(pattern.RewriteRule(_reduce_target(pow_form), _reduce_replace, _reduce_check,
                                       name=f"magnitude-form-reduce-{int(pow_form)}"))
        out.append(pattern.RewriteRule(_log_target(pow_form), _log_replace, _log_check,
                                       name=f"magnitude-form-log-{int(pow_form)}"))
    return out


def rewrite(model):
    present = {n.op_type for n in model.graph.node}
    if not present & {"Sqrt", "Log"} or not present & {"Pow", "Mul"}:
        return model, 0
    return apply_rules(model, _rules(), commute=True)


RULE = GraphRule(
    id="magnitude-form",
    summary="Sqrt(a² + b²) (also Sqrt(ReduceSum(x²)) over (re, im), and Log(t² + ε)) → max(|a|,|b|)·Sqrt(1 + "
            "(min/max)²): exact, and no squared tensor, whose one quantization range (set by loud input) "
            "rounds quiet frames' squares to zero",
    ops=("Pow", "Mul", "Log"),  # where (CPU) localization puts the loss: the squares, or the log of a power
    reasons=(),
    rewrite=rewrite,
    quantization_numerics=True,
)
