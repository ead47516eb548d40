"""A compact, text-sized picture of an ONNX graph: what an agent (or a person) needs to choose a repair.

Shared by the agent's `inspect_graph` tool and the skills' command-line helpers, so both say
the same thing about the same file.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx

_DT = {v: k.lower() for k, v in onnx.TensorProto.DataType.items()}


def _shape(vi) -> list:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return ["?"]
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]


def _dtype(vi) -> str:
    return _DT.get(vi.type.tensor_type.elem_type, "?")


def summarize(path: Path, op: str | None = None, limit: int = 40) -> dict:
    """Opset, I/O, op histogram, int64 tensors, ranks > 4, and (for `op`) the nodes of that type."""
    model = onnx.load(str(path), load_external_data=False)
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # a graph the checker dislikes can still be described
        pass
    g = model.graph
    vis = {v.name: v for v in list(g.value_info) + list(g.input) + list(g.output)}
    inits = {i.name for i in g.initializer}
    info = {
        "file": str(path),
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "inputs": [{"name": i.name, "shape": _shape(i), "dtype": _dtype(i)} for i in g.input if i.name not in inits],
        "outputs": [{"name": o.name, "shape": _shape(o), "dtype": _dtype(o)} for o in g.output],
        "nodes": len(g.node),
        "ops": dict(Counter(n.op_type for n in g.node).most_common()),
        "int64_tensors": sorted(n for n, v in vis.items() if _dtype(v) == "int64")[:limit],
        "rank_gt4": sorted(f"{n}:{_shape(v)}" for n, v in vis.items() if len(_shape(v)) > 4)[:limit],
    }
    if op:
        sel = [n for n in g.node if n.op_type.lower() == op.lower()]
        info["selected"] = [{
            "name": n.name, "op": n.op_type,
            "inputs": [f"{i}:{_shape(vis[i]) if i in vis else ('init' if i in inits else '?')}" for i in n.input],
            "outputs": [f"{o}:{_shape(vis[o]) if o in vis else '?'}" for o in n.output],
            "attrs": {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute
                      if a.type in (onnx.AttributeProto.INT, onnx.AttributeProto.FLOAT, onnx.AttributeProto.INTS,
                                    onnx.AttributeProto.STRING)},
        } for n in sel[:limit]]
        for s in info["selected"]:
            s["attrs"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in s["attrs"].items()}
    return info


def activation_tensors(path: Path) -> list[str]:
    """Names of every node output (the tensors a quantization override can name)."""
    model = onnx.load(str(path), load_external_data=False)
    return [o for n in model.graph.node for o in n.output if o]
