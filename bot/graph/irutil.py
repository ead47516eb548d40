"""Small ONNX IR helpers shared by the graph rules and the host-part format: convert between
ModelProto and onnx_ir, read constants, shapes and attributes, make literal constants. onnx_ir only (no onnxscript), so the
stages that read a host part do not load the rewriter."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
from onnx_ir.passes.common import LiftConstantsToInitializersPass, RemoveUnusedNodesPass


def to_ir(model: onnx.ModelProto) -> ir.Model:
    return ir.serde.deserialize_model(model)


def to_proto(model: ir.Model) -> onnx.ModelProto:
    LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(model)
    RemoveUnusedNodesPass()(model)
    drop_unused_initializers(model.graph)
    return ir.serde.serialize_model(model)


def drop_unused_initializers(graph: ir.Graph) -> None:
    for name, v in list(graph.initializers.items()):
        if not v.uses() and not v.is_graph_output() and not v.is_graph_input():
            del graph.initializers[name]



def const(value: ir.Value | None) -> np.ndarray | None:
    """The constant behind a value (initializer or Constant node), else None."""
    if value is None:
        return None
    t = value.const_value
    if t is None and value.producer() is not None and value.producer().op_type == "Constant":
        attr = value.producer().attributes.get("value")
        t = attr.value if attr is not None else None
    return None if t is None else t.numpy()


def make_constant(op, value, dtype) -> ir.Value:
    """A Constant node holding `value` as `dtype` (a literal a replacement pattern needs: a shape, an
    axis, an ε); `const` reads one back."""
    return op.Constant(value=ir.tensor(np.array(value, dtype)))


def static_shape(value: ir.Value | None) -> tuple[int, ...] | None:
    if value is None or value.shape is None:
        return None
    dims = tuple(value.shape)
    return dims if all(isinstance(d, int) for d in dims) else None


def opset(model: onnx.ModelProto | ir.Model) -> int:
    if isinstance(model, ir.Model):
        return model.opset_imports.get("", 0)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def attr(node: ir.Node, name: str, default=None):
    a = node.attributes.get(name)
    if a is None:
        return default
    v = a.value
    return v.decode() if isinstance(v, bytes) else v
