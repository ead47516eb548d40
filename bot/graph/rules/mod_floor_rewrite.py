"""mod-floor-rewrite: float `Mod(fmod=1)` (C fmod, torch.fmod) → x − c·trunc(x / c), trunc(q) = Sign(q)·Floor(|q|).

Evidence (onnxruntime-qnn 2.7, HTP v75): `Mod` with fmod=1 is refused with
`QNN Mod Op only support fmod == 0 for now.`; ONNX allows fmod=0 only for integers, so a float
remainder can never reach the HTP as a Mod. Integer `Mod(fmod=0)`, integer `Div`, and
`Floor(Div(x, c))` (floor division, torch's `//` and `remainder` lowering) are placed as they are,
as are Div/Abs/Floor/Sign/Mul/Sub, which is what the rewrite emits. Exact in float arithmetic up
to the rounding of x / c (the same as fmod's definition).
"""

from __future__ import annotations

import onnx_ir as ir
from onnxscript.rewriter import pattern

from bot.graph.irutil import attr
from bot.graph.rule import GraphRule

_FLOATS = {ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.DOUBLE, ir.DataType.BFLOAT16}


def _target(op, x, c):
    return op.Mod(x, c, _outputs=["y"])


def _check(ctx, x, c, y, **_):
    return attr(y.producer(), "fmod", 0) == 1 and x.dtype in _FLOATS


def _replace(op, x, c, **_):
    q = op.Div(x, c)
    t = op.Mul(op.Sign(q), op.Floor(op.Abs(q)))
    return op.Sub(x, op.Mul(t, c))


PATTERN = pattern.RewriteRule(_target, _replace, _check, name="mod-floor-rewrite")


RULE = GraphRule(
    id="mod-floor-rewrite",
    summary="float Mod(fmod=1) → x − c·Sign(x/c)·Floor(|x/c|) (the HTP's Mod takes fmod=0, integers only)",
    ops=("Mod",),
    reasons=(),  # any rejection of a Mod
    patterns=(PATTERN,),
)
