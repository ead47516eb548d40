"""The host-part artifact format: the tail of a graph cut out of the deployed model to run on the CPU.

Written by the rules that move work off the NPU (`strip-postprocess`, `split-packed-output`);
read by the stages that run or ship the deployed model (validate, package, the float parity check)
and carried through quantization.
The deployed model keeps everything before the cut and exposes the tensors that crossed it as
graph outputs; the cut nodes become a standalone ONNX model stored, base64, in the deployed
model's metadata_props under `aipc.host_postprocess`, so the description travels with the graph
through quantization and compilation (the validate and package stages read it from there):

    {"version": 2, "final_outputs": [names of the original outputs, in order],
     "parts": [{"inputs": [{name, dtype, shape}], "outputs": [...], "ops": [...], "onnx_base64": "..."}]}

Parts run in list order; a later cut (nearer the device) is put first. `complete()` turns the
deployed model's outputs back into the original ones, which is what golden outputs, the packaged
`run.py` and an app compare against.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

import numpy as np
import onnx

if TYPE_CHECKING:  # only the writer (`cut_to_host`, called by the graph rules) works on the IR
    import onnx_ir as ir

KEY = "aipc.host_postprocess"


def _vinfo(v: ir.Value) -> dict:
    return {"name": v.name, "dtype": v.dtype.name if v.dtype is not None else None,
            "shape": [d if isinstance(d, int) else str(d) for d in v.shape] if v.shape is not None else None}


def cut_to_host(model: onnx.ModelProto, m: ir.Model, cut: set[int]) -> onnx.ModelProto:
    """Move the nodes of `m` (the IR of `model`) whose id() is in `cut` to the host part."""
    g = m.graph
    order = [n for n in g if id(n) in cut]  # topological, as in the graph
    final = [v.name for v in g.outputs]
    outputs = [v for v in g.outputs if v.producer() is not None and id(v.producer()) in cut]
    boundary: dict[str, ir.Value] = {}
    for n in order:
        for v in n.inputs:
            if v is None or v.name in boundary:
                continue
            p = v.producer()
            if (p is not None and id(p) not in cut) or (p is None and v.is_graph_input()):
                boundary[v.name] = v
    host = _host_model(model, order, list(boundary.values()), outputs)
    part = {"inputs": [_vinfo(v) for v in boundary.values()], "outputs": [_vinfo(v) for v in outputs],
            "ops": [n.op_type for n in order],
            "onnx_base64": base64.b64encode(host.SerializeToString()).decode("ascii")}
    prior = host_postprocess(model)
    desc = {"version": 2, "final_outputs": prior["final_outputs"] if prior else final,
            "parts": [part] + (prior["parts"] if prior else [])}
    keep_outputs = [v for v in g.outputs if v not in outputs]
    g.outputs.clear()
    g.outputs.extend(keep_outputs + [v for v in boundary.values() if v not in keep_outputs and not v.is_graph_input()])
    g.remove(order, safe=True)
    # deferred: onnx_ir (with sympy) is for the rules that cut a graph; the stages only read a host part
    from bot.graph.irutil import to_proto

    out = to_proto(m)
    old = next((p for p in out.metadata_props if p.key == KEY), None)
    if old is not None:
        out.metadata_props.remove(old)
    out.metadata_props.add(key=KEY, value=json.dumps(desc))
    return out


def _host_model(model: onnx.ModelProto, order, inputs, outputs) -> onnx.ModelProto:
    names = {n.name for n in order}
    src = [n for n in model.graph.node if n.name in names] if all(n.name for n in order) else None
    if src is None or len(src) != len(order):
        raise ValueError("a host cut needs named nodes")
    wanted = {i for n in src for i in n.input}
    inits = [t for t in model.graph.initializer if t.name in wanted]
    known = {v.name for v in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}
    if any(v.name not in known for v in list(inputs) + list(outputs)):
        model = onnx.shape_inference.infer_shapes(model)  # the host model's I/O need dtypes
    vi = {v.name: v for v in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}

    def info(v):
        return vi.get(v.name) or onnx.helper.make_tensor_value_info(v.name, v.dtype.value if v.dtype else 0, None)

    g = onnx.helper.make_graph(src, "host_postprocess", [info(v) for v in inputs], [info(v) for v in outputs], inits)
    hm = onnx.helper.make_model(g, opset_imports=list(model.opset_import))
    hm.ir_version = model.ir_version
    return hm


def host_postprocess(model: onnx.ModelProto) -> dict | None:
    """The host part a cut model carries, or None."""
    p = next((p for p in model.metadata_props if p.key == KEY), None)
    return json.loads(p.value) if p is not None else None


def host_part_of(path) -> dict | None:
    """The host part of the ONNX model at `path` (weights not loaded)."""
    return host_postprocess(onnx.load(str(path), load_external_data=False))


def carry_host_part(src, dst) -> None:
    """Copy the host part from the model at `src` to the one at `dst` when a tool dropped it."""
    desc = host_part_of(src)
    if desc is None or host_part_of(dst) is not None:
        return
    m = onnx.load(str(dst))
    m.metadata_props.add(key=KEY, value=json.dumps(desc))
    onnx.save(m, str(dst))


def part_bytes(part: dict) -> bytes:
    """One host part's serialized ONNX model (the format stores it base64 in the description)."""
    return base64.b64decode(part["onnx_base64"])


def run_host_postprocess(desc: dict, deployed_outputs: dict) -> dict:
    """Run every host part (ONNX Runtime, CPU) and return the original outputs, by name, in order."""
    import onnxruntime as ort  # deferred: a slow import, and only running a host part needs it

    have = dict(deployed_outputs)
    for part in desc["parts"]:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        sess = ort.InferenceSession(part_bytes(part), so, providers=["CPUExecutionProvider"])
        feeds = {i["name"]: np.asarray(have[i["name"]]) for i in part["inputs"]}
        have.update(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    return {name: have[name] for name in desc["final_outputs"]}


def complete(desc: dict | None, outputs: dict) -> dict:
    """The model's original outputs from the deployed ones (a no-op without a host part)."""
    return run_host_postprocess(desc, outputs) if desc else outputs
