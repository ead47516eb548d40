"""scatternd-to-slice-concat: ScatterND with constant indices that write one box → Slice + Concat.

`x[:, a:b] = u` and friends export (TorchScript) as ScatterND with constant indices. When the
indices, read in C order, enumerate a box that is full on every axis but at most one (where it
is the contiguous range [a, b)), the scatter is `Concat(x[..., :a, ...], u, x[..., b:, ...])`
along that axis, with `u` reshaped to the box. The rule checks exactly that enumeration, so it
never fires on a scatter it would change.

Evidence (onnxruntime-qnn 2.7, HTP v75, float): `ScatterND` with constant int64 indices is
placed on this EP, so here the rule is not needed for placement; it stays for the SDK
converters and older EPs (ScatterND joined the op table late) and because Slice/Concat are
layout-friendly for the HTP's NHWC rewrite, where a scatter is a gather-style memory op.
"""

from __future__ import annotations

import numpy as np
from onnxscript.rewriter import pattern

from bot.graph.irutil import attr, const, static_shape
from bot.graph.rule import GraphRule


def box_of(indices: np.ndarray, data_shape: tuple[int, ...]):
    """(axis, start, stop, box_shape) if the indices enumerate a box in C order, else None."""
    k = indices.shape[-1]
    flat = indices.reshape(-1, k).astype(np.int64)
    flat = np.where(flat < 0, flat + np.array(data_shape[:k]), flat)
    if flat.size == 0:
        return None
    lo, hi = flat.min(0), flat.max(0) + 1
    partial = [a for a in range(k) if lo[a] != 0 or hi[a] != data_shape[a]]
    if len(partial) > 1:
        return None
    box = [int(h - l) for l, h in zip(lo, hi)]
    grid = np.stack(np.meshgrid(*[np.arange(l, h) for l, h in zip(lo, hi)], indexing="ij"), -1).reshape(-1, k)
    if grid.shape != flat.shape or not np.array_equal(grid, flat):
        return None
    axis = partial[0] if partial else 0
    return axis, int(lo[axis]), int(hi[axis]), box + list(data_shape[k:])


def _target(op, data, indices, updates):
    return op.ScatterND(data, indices, updates, _outputs=["y"])


def _plan(data, indices, updates, y):
    if attr(y.producer(), "reduction", "none") != "none":
        return None
    idx, shape = const(indices), static_shape(data)
    if idx is None or shape is None or static_shape(updates) is None:
        return None
    return box_of(idx, shape)


def _check(ctx, data, indices, updates, y, **_):
    return _plan(data, indices, updates, y) is not None


def _replace(op, data, indices, updates, y, **_):
    axis, a, b, box = _plan(data, indices, updates, y)
    n = static_shape(data)[axis]
    u = op.Reshape(updates, op.Constant(value_ints=box))
    parts = []
    if a > 0:
        parts.append(op.Slice(data, op.Constant(value_ints=[0]), op.Constant(value_ints=[a]), op.Constant(value_ints=[axis])))
    parts.append(u)
    if b < n:
        parts.append(op.Slice(data, op.Constant(value_ints=[b]), op.Constant(value_ints=[n]), op.Constant(value_ints=[axis])))
    return op.Concat(*parts, axis=axis) if len(parts) > 1 else op.Identity(u)


PATTERN = pattern.RewriteRule(_target, _replace, _check, name="scatternd-to-slice-concat")


RULE = GraphRule(
    id="scatternd-to-slice-concat",
    summary="ScatterND with constant indices writing one contiguous box → Slice + Concat",
    ops=("ScatterND",),
    reasons=(),
    patterns=(PATTERN,),
)
