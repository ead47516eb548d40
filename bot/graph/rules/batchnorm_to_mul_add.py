"""batchnorm-to-mul-add: an unfolded inference `BatchNormalization` → `Mul` + `Add` by constants.

Evidence (onnxruntime-qnn 2.7, HTP v75, LeViT-128S at w8a8): BatchNorm that follows a MatMul
(LeViT's `Linear` + `BatchNorm1d`) is not folded by the exporter or onnxslim, and its QDQ form is
refused: `QNN Batchnorm unsupported datatype on HTP.` (19–20 nodes fall back to the CPU). In
inference mode it is y = x·s + b with s = γ/√(σ²+ε), b = β − μ·s per channel (axis 1), which
the HTP runs quantized like any elementwise Mul/Add.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern

from bot.graph.irutil import attr, const
from bot.graph.rule import GraphRule


def _target(op, x, scale, bias, mean, var):
    return op.BatchNormalization(x, scale, bias, mean, var, _outputs=["y"])


def _check(ctx, x, scale, bias, mean, var, y, **_):
    node = y.producer()
    if len(node.outputs) > 1 and any(o.uses() for o in node.outputs[1:]):
        return False  # training-mode outputs in use
    if x.shape is None or len(x.shape) < 2 or attr(node, "training_mode", 0):
        return False
    return all(const(v) is not None for v in (scale, bias, mean, var))


def _replace(op, x, scale, bias, mean, var, y=None, **_):
    eps = attr(y.producer(), "epsilon", 1e-5) if y is not None else 1e-5
    s = const(scale) / np.sqrt(const(var) + eps)
    b = const(bias) - const(mean) * s
    shape = [-1] + [1] * (len(x.shape) - 2)  # broadcast over axis 1
    dtype = x.dtype.numpy() if x.dtype is not None else np.float32
    s_t = op.Constant(value=ir.tensor(s.reshape(shape).astype(dtype)))
    b_t = op.Constant(value=ir.tensor(b.reshape(shape).astype(dtype)))
    return op.Add(op.Mul(x, s_t), b_t)


PATTERN = pattern.RewriteRule(_target, _replace, _check, name="batchnorm-to-mul-add")


RULE = GraphRule(
    id="batchnorm-to-mul-add",
    summary="unfolded inference BatchNormalization → Mul + Add by per-channel constants (QDQ BatchNorm refused on HTP)",
    ops=("BatchNormalization",),
    reasons=("unsupported datatype",),
    patterns=(PATTERN,),
)
