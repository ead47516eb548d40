"""pad-value-to-concat: constant-mode `Pad` with a non-zero fill value → `Concat` with a constant block.

Evidence (onnxruntime-qnn 2.7, HTP v75, found by device-side localization on EfficientViT-B0):
the linear attention pads V with ones (`F.pad(v, (0, 1), value=1)`) so one MatMul also yields
the normaliser. Quantized (w8a16), the HTP places that Pad but its output agrees with the float
tensor at cosine 0.01 while ONNX Runtime's CPU QDQ gives 0.99998: the fill value is lost on the
device, and the attention's division falls apart downstream (model cosine 0.94 → fails 0.95).
Concatenating a constant block of the fill value computes the same tensor with ops the HTP
handles exactly. Needs static shapes (the optimize stage guarantees them).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern

from bot.graph.irutil import attr, const, static_shape
from bot.graph.rule import GraphRule


def _target(op, x, pads, value):
    return op.Pad(x, pads, value, _outputs=["y"])


def _check(ctx, x, pads, value, y, **_):
    p, v, shape = const(pads), const(value), static_shape(x)
    mode = attr(y.producer(), "mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if p is None or v is None or shape is None or mode != "constant" or len(y.producer().inputs) > 3:
        return False
    if np.any(p < 0) or not np.any(p) or float(np.asarray(v).ravel()[0]) == 0.0:
        return False
    return int(np.count_nonzero(p.reshape(2, -1).sum(0))) == 1  # one axis padded (either side)


def _replace(op, x, pads, value, **_):
    p = const(pads).reshape(2, -1)
    shape = list(static_shape(x))
    axis = int(np.flatnonzero(p.sum(0))[0])
    fill = float(np.asarray(const(value)).ravel()[0])
    dtype = x.dtype.numpy() if x.dtype is not None else np.float32
    parts = []
    for n, where in ((int(p[0, axis]), "before"), (None, "x"), (int(p[1, axis]), "after")):
        if where == "x":
            parts.append(x)
        elif n:
            block = shape.copy()
            block[axis] = n
            parts.append(op.Constant(value=ir.tensor(np.full(block, fill, dtype=dtype))))
    return op.Concat(*parts, axis=axis)


PATTERN = pattern.RewriteRule(_target, _replace, _check, name="pad-value-to-concat")


RULE = GraphRule(
    id="pad-value-to-concat",
    summary="constant Pad with a non-zero fill value → Concat with a constant block (the HTP loses the fill value)",
    ops=("Pad",),
    reasons=(),
    patterns=(PATTERN,),
    device_numerics=True,
)
