"""strip-postprocess: cut NMS and other trailing post-processing out of the deployed graph.

Evidence (onnxruntime-qnn 2.7, HTP v75): `NonMaxSuppression` is refused (`Cannot get shape`: its
output count is data-dependent, and the HTP wants static shapes); QAIRT-era practice (AI Hub's
YOLO models) is the same: the network ends at boxes/scores and the app runs NMS. TopK / ArgMax /
Gather decoding are placed by this EP version but are host work in every packaged detector and
cost a CPU↔NPU round trip when they are the last ops anyway.

The rule seeds at every NonMaxSuppression (and NonZero), and at TopK / ArgMax / ArgMin whose
downstream region is small (≤ 24 nodes) and ends only in graph outputs. The region cut is the
seeds' whole downstream closure. The tensors that flow into it from the kept graph become graph
outputs of the deployed model; the cut part is written as a standalone ONNX model (base64) with a
JSON list of its nodes into the model's metadata_props under `aipc.host_postprocess`:
`{"version": 1, "inputs": [{name, dtype, shape}], "outputs": [...], "ops": [...],
"onnx_base64": "..."}`. The package stage can write that model beside the deployment and the
runtime script can run it with ONNX Runtime on the CPU, feeding it the deployed outputs of the
same names (`run_host_postprocess` below is that host half).
"""

from __future__ import annotations

import base64
import json

import onnx
import onnx_ir as ir

from bot.repair.graph import GraphRule, register
from bot.repair.graph._util import to_ir, to_proto

KEY = "aipc.host_postprocess"
ALWAYS = {"NonMaxSuppression", "NonZero"}
TRAILING = {"TopK", "ArgMax", "ArgMin"}
MAX_TRAILING = 24


def _closure(node: ir.Node) -> list[ir.Node]:
    seen, stack = {id(node): node}, [node]
    while stack:
        for out in stack.pop().outputs:
            for user, _ in out.uses():
                if id(user) not in seen:
                    seen[id(user)] = user
                    stack.append(user)
    return list(seen.values())


def _vinfo(v: ir.Value) -> dict:
    return {"name": v.name, "dtype": v.dtype.name if v.dtype is not None else None,
            "shape": [d if isinstance(d, int) else str(d) for d in v.shape] if v.shape is not None else None}


def rewrite(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    m = to_ir(model)
    g = m.graph
    cut: dict[int, ir.Node] = {}
    seeds = 0
    for node in g:
        if id(node) in cut:
            continue
        if node.op_type in ALWAYS or node.op_type in TRAILING:
            region = _closure(node)
            if node.op_type in TRAILING and len(region) > MAX_TRAILING:
                continue
            seeds += 1
            cut.update((id(n), n) for n in region)
    if not seeds:
        return model, 0
    order = [n for n in g if id(n) in cut]  # topological, as in the graph
    outputs = [v for v in g.outputs if v.producer() is not None and id(v.producer()) in cut]
    boundary: dict[str, ir.Value] = {}
    for n in order:
        for v in n.inputs:
            if v is None or v.name in boundary:
                continue
            p = v.producer()
            if (p is not None and id(p) not in cut) or (p is None and v.is_graph_input()):
                boundary[v.name] = v
    # the host model: a copy of the cut nodes, fed by the boundary tensors
    host = _host_model(model, order, list(boundary.values()), outputs)
    desc = {"version": 1, "inputs": [_vinfo(v) for v in boundary.values()], "outputs": [_vinfo(v) for v in outputs],
            "ops": [n.op_type for n in order],
            "onnx_base64": base64.b64encode(host.SerializeToString()).decode("ascii")}
    # the deployed model: drop the cut nodes, expose the boundary
    keep_outputs = [v for v in g.outputs if v not in outputs]
    g.outputs.clear()
    g.outputs.extend(keep_outputs + [v for v in boundary.values() if v not in keep_outputs and not v.is_graph_input()])
    g.remove(order, safe=True)
    out = to_proto(m)
    prior = next((p for p in out.metadata_props if p.key == KEY), None)
    if prior is not None:
        out.metadata_props.remove(prior)
    out.metadata_props.add(key=KEY, value=json.dumps(desc))
    return out, seeds


def _host_model(model: onnx.ModelProto, order, inputs, outputs) -> onnx.ModelProto:
    names = {n.name for n in order}
    src = [n for n in model.graph.node if n.name in names] if all(n.name for n in order) else None
    if src is None or len(src) != len(order):
        raise ValueError("strip-postprocess needs named nodes")
    wanted = {i for n in src for i in n.input}
    inits = [t for t in model.graph.initializer if t.name in wanted]
    vi = {v.name: v for v in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}

    def info(v):
        return vi.get(v.name) or onnx.helper.make_tensor_value_info(v.name, v.dtype.value if v.dtype else 0, None)

    g = onnx.helper.make_graph(src, "host_postprocess", [info(v) for v in inputs], [info(v) for v in outputs], inits)
    hm = onnx.helper.make_model(g, opset_imports=list(model.opset_import))
    hm.ir_version = model.ir_version
    return hm


def host_postprocess(model: onnx.ModelProto) -> dict | None:
    """The cut description a stripped model carries, or None."""
    p = next((p for p in model.metadata_props if p.key == KEY), None)
    return json.loads(p.value) if p is not None else None


def run_host_postprocess(desc: dict, deployed_outputs: dict) -> dict:
    """Run the cut part on the host (ONNX Runtime, CPU) from the deployed model's outputs."""
    import onnxruntime as ort

    sess = ort.InferenceSession(base64.b64decode(desc["onnx_base64"]), providers=["CPUExecutionProvider"])
    feeds = {i["name"]: deployed_outputs[i["name"]] for i in desc["inputs"]}
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


register(GraphRule(
    id="strip-postprocess",
    summary="cut NMS / TopK / ArgMax decoding out of the deployed graph; the cut part runs on the host "
            "(metadata_props aipc.host_postprocess)",
    ops=("NonMaxSuppression", "NonZero", "TopK", "ArgMax", "ArgMin"),
    reasons=(),
    rewrite=rewrite,
))
