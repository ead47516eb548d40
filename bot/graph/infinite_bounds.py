"""`Max(x, -inf)` / `Min(x, +inf)` with a constant bound → `x`: the graph rule `infinite-bound`.

Evidence (magika 1.0.3, jax2tf export): its softmax is written out as `exp(x - max(reduce_max(x),
-inf))` (jax's stable softmax with an `initial=-inf` bound). The bound computes nothing, but the QDQ
quantizer gives the constant -inf a scale of inf, the Max output becomes NaN on onnxruntime's CPU
simulation and garbage on the HTP: content-type agreement 0/13 at w8a8 and at w8a16 (cosine 0.10).
Dropping the bound is exact for every x, so the optimize stage applies it to every graph: it lives
outside `bot.graph.rules` so that stage does not load the rules catalogue (onnxscript's rewriter and
onnx's reference evaluator, ≈ 0.2 s) on a graph that needs no repair.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

BOUND = {"Max": -np.inf, "Min": np.inf}


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    out = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return out


def drop_infinite_bounds(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    consts = _constants(model)
    graph_outputs = {o.name for o in model.graph.output}
    count = 0
    for node in list(model.graph.node):
        if node.op_type not in BOUND or len(node.input) != 2:
            continue
        bound = [i for i in node.input if i in consts and consts[i].dtype.kind == "f" and consts[i].size
                 and np.all(consts[i] == BOUND[node.op_type])]
        if len(bound) != 1:
            continue
        x = next(i for i in node.input if i != bound[0])
        if x in consts or node.output[0] in graph_outputs:
            continue  # a graph output keeps its producer's name: leave it (rare; onnxslim folds constants)
        for other in model.graph.node:
            for k, name in enumerate(other.input):
                if name == node.output[0]:
                    other.input[k] = x
        model.graph.node.remove(node)
        count += 1
    return model, count
