"""int64-to-int32: int64 index tensors → int32 where the values allow.

Rewrites, each only where it is exact:
- Gather / GatherElements with constant int64 indices → int32 indices, negative indices made
  positive against the static axis size (the QNN op table: Gather "Only supports positive
  indices").
- Cast(to=INT64) whose every consumer reads it as Gather / GatherElements indices (or casts it
  again) → Cast(to=INT32).
Shape-typed inputs (Reshape/Expand/Slice/Tile/Resize sizes, axes, pads, TopK K) are int64 by
the ONNX spec and are never touched; they are constants the HTP folds. Graph inputs and outputs
keep their types (the runtime interface does not change).

Evidence (onnxruntime-qnn 2.7, HTP v75, float): int64 Add→Cast, Shape→Mul→Expand, Gather with
int64 indices, ArgMax / TopK with int64 outputs were all placed: this EP inserts the casts
itself (onnxruntime PRs #24351/#24389). Older EPs refused them with
`Validation FAILED for 1 nodes in NodeUnit (Expand) … REASON : Type not supported.`
(onnxruntime#22320) and the QAIRT converters want `--truncate_64bit_io`; the rule is for those.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern

from bot.graph.irutil import attr, const, static_shape, to_ir, to_proto
from bot.graph.rule import GraphRule, apply_rules

I32 = np.iinfo(np.int32)


def _gather_target(op_type):
    def target(op, data, idx):
        return getattr(op, op_type)(data, idx, _allow_other_attributes=True, _outputs=["y"])
    return target


def _fixed_indices(data, idx, y):
    c = const(idx)
    if c is None or idx.dtype != ir.DataType.INT64:
        return None
    if (c < 0).any():
        shape = static_shape(data)
        if shape is None:
            return None
        c = np.where(c < 0, c + shape[attr(y.producer(), "axis", 0)], c)
    if c.size and (c.min() < I32.min or c.max() > I32.max):
        return None
    return c.astype(np.int32)


def _gather_check(ctx, data, idx, y, **_):
    return _fixed_indices(data, idx, y) is not None


def _gather_replace_for(op_type):
    def replace(op, data, idx, y, **_):
        new = op.Constant(value=ir.tensor(_fixed_indices(data, idx, y)))
        return getattr(op, op_type)(data, new, axis=attr(y.producer(), "axis", 0))
    return replace


def _cast_target(op, x):
    return op.Cast(x, _allow_other_attributes=True, _outputs=["y"])


def _index_use(node: ir.Node, i: int) -> bool:
    return (node.op_type in ("Gather", "GatherElements") and node.domain in ("", "ai.onnx") and i == 1) or node.op_type == "Cast"


def _cast_check(ctx, x, y, **_):
    if attr(y.producer(), "to") != ir.DataType.INT64 or y.is_graph_output() or not y.uses():
        return False
    return all(_index_use(n, i) for n, i in y.uses())


def _cast_replace(op, x, **_):
    return op.Cast(x, to=ir.DataType.INT32)


PATTERNS = [
    *(pattern.RewriteRule(_gather_target(t), _gather_replace_for(t), _gather_check, name=f"int64-{t}")
      for t in ("Gather", "GatherElements")),
    pattern.RewriteRule(_cast_target, _cast_replace, _cast_check, name="int64-cast"),
]


def rewrite(model):
    out, count = apply_rules(model, PATTERNS)
    if count:  # the rewriter carries the old output's int64 type over to the new Cast's output
        m = to_ir(out)
        for node in m.graph:
            if node.op_type == "Cast" and attr(node, "to") == ir.DataType.INT32 and node.outputs[0].dtype == ir.DataType.INT64:
                node.outputs[0].dtype = ir.DataType.INT32
        out = to_proto(m)
    return out, count


RULE = GraphRule(
    id="int64-to-int32",
    summary="int64 Gather indices and index Casts → int32 (negative indices made positive); older EPs refuse int64",
    ops=("Gather", "GatherElements", "Cast", "Expand", "Add", "Mul", "Sub", "Equal", "Where"),
    reasons=("Type not supported", "int64", "positive indices"),
    rewrite=rewrite,
)
