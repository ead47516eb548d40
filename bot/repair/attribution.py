"""Weights or activations: which half of the quantization carries the error?

The planner's order should follow the cause: per-channel weight scales fix error in the weights,
16-bit activations fix error in the activations, and trying the wrong one first spends an
attempt (a full HTP compile and validation) for nothing. Two variants of the QDQ graph answer it
on the CPU in a fraction of one attempt: the same graph with the float weights put back (only
activations quantized) and with the activation Q/DQ pairs bypassed (only weights quantized).
Each is run on the validation samples against the golden outputs; the worse one names the cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from bot import metrics as M
from bot.cpu_session import as_written

DQ_SUFFIX = "_DequantizeLinear_Output"


@dataclass
class Attribution:
    weights_only_cosine: float  # activations in float: the error the quantized weights alone make
    activations_only_cosine: float  # weights in float: the error the quantized activations alone make

    @property
    def cause(self) -> str:
        """'weights' or 'activations': the half whose quantization alone loses more."""
        w, a = _err(self.weights_only_cosine), _err(self.activations_only_cosine)
        return "weights" if w > a else "activations"

    def to_dict(self) -> dict:
        return {"weights_only_cosine": _round(self.weights_only_cosine),
                "activations_only_cosine": _round(self.activations_only_cosine), "cause": self.cause}


def _err(c: float) -> float:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    return 2.0 if c is None or np.isnan(c) else 1.0 - c


def _round(v: float) -> float:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    return round(float(v), 6) if np.isfinite(v) else float(v)


def float_weights(qdq: onnx.ModelProto, float_model: onnx.ModelProto) -> onnx.ModelProto:
    """The QDQ graph with every dequantized initializer replaced by the float graph's original."""
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
    from onnx import helper  # deferred: ~0.4 s to import; a fully cached run opens no graph
    originals = {i.name: i for i in float_model.graph.initializer}
    inits = {i.name for i in qdq.graph.initializer}
    m = onnx.ModelProto()
    m.CopyFrom(qdq)
    nodes, added = [], []
    for n in m.graph.node:
        name = n.output[0][: -len(DQ_SUFFIX)] if n.output[0].endswith(DQ_SUFFIX) else ""
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and name in originals:
            t = onnx.TensorProto()
            t.CopyFrom(originals[name])
            t.name = f"{name}__float"
            added.append(t)
            nodes.append(helper.make_node("Identity", [t.name], [n.output[0]], name=f"{n.name}__float"))
        else:
            nodes.append(n)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    m.graph.initializer.extend(added)
    return m


def _grid_bounds(q_node, inits: dict) -> tuple[float, float] | None:
    """The real range a per-tensor QuantizeLinear can represent: [(qmin − zp)·s, (qmax − zp)·s]."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    from onnx import numpy_helper  # deferred: ~0.4 s to import; a fully cached run opens no graph

    if len(q_node.input) < 3 or q_node.input[1] not in inits or q_node.input[2] not in inits:
        return None
    s, zp = numpy_helper.to_array(inits[q_node.input[1]]), numpy_helper.to_array(inits[q_node.input[2]])
    if s.size != 1 or zp.size != 1 or not np.issubdtype(zp.dtype, np.integer):
        return None
    info = np.iinfo(zp.dtype)
    s, z = float(s.reshape(-1)[0]), float(zp.reshape(-1)[0])
    return (info.min - z) * s, (info.max - z) * s


def float_activations(qdq: onnx.ModelProto) -> onnx.ModelProto:
    """The QDQ graph with every activation's Quantize→Dequantize pair bypassed: no rounding, but
    still clipped to the range the pair represents. onnxruntime's quantizer removes a Clip or
    Relu whose bounds the following Q's range already enforces (PP-OCR's hard-swish `Clip(x + 3,
    0, 6)`), so an Identity in its place let x + 3 through unbounded: the weights-only graph grew
    to inf and the attribution blamed the weights with a NaN."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
    from onnx import helper, numpy_helper  # deferred: ~0.4 s to import; a fully cached run opens no graph
    inits = {i.name: i for i in qdq.graph.initializer}
    q_nodes = {n.output[0]: n for n in qdq.graph.node
               if n.op_type == "QuantizeLinear" and n.input[0] not in inits}
    q_src = {o: n.input[0] for o, n in q_nodes.items()}
    m = onnx.ModelProto()
    m.CopyFrom(qdq)
    nodes, added = [], []
    for n in m.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in q_src:
            bounds = _grid_bounds(q_nodes[n.input[0]], inits)
            if bounds is None:
                nodes.append(helper.make_node("Identity", [q_src[n.input[0]]], [n.output[0]], name=f"{n.name}__float"))
                continue
            lo, hi = (numpy_helper.from_array(np.array(v, np.float32), f"{n.name}__float_{k}")
                      for k, v in zip(("min", "max"), bounds))
            added += [lo, hi]
            nodes.append(helper.make_node("Clip", [q_src[n.input[0]], lo.name, hi.name], [n.output[0]],
                                          name=f"{n.name}__float"))
        elif n.op_type == "QuantizeLinear" and n.output[0] in q_src:
            continue  # its only reader was the Dequantize just bypassed
        else:
            nodes.append(n)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    m.graph.initializer.extend(added)
    return m


def _worst_cosine(model: onnx.ModelProto, feeds: list[dict], golden: list[dict]) -> float:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    import onnxruntime as ort  # deferred: a slow import; only running a graph needs it

    sess = ort.InferenceSession(model.SerializeToString(), as_written(), providers=["CPUExecutionProvider"])
    wanted = [i.name for i in sess.get_inputs()]
    names = [o.name for o in sess.get_outputs()]
    worst = 1.0
    for f, g in zip(feeds, golden):
        outs = dict(zip(names, sess.run(None, {k: v for k, v in f.items() if k in wanted})))
        for name, ref in g.items():
            if name in outs:
                c = M.cosine(ref, outs[name])
                worst = c if np.isnan(c) or c < worst else worst
                if np.isnan(worst):
                    return worst
    return worst


def attribute(float_path: Path, qdq_path: Path, feeds: list[dict], golden: list[dict]) -> Attribution | None:
    """Both halves measured on the CPU; None when the QDQ graph cannot be split this way."""
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
    try:
        qdq, fl = onnx.load(str(qdq_path)), onnx.load(str(float_path))
        w = _worst_cosine(float_activations(qdq), feeds, golden)
        a = _worst_cosine(float_weights(qdq, fl), feeds, golden)
    except Exception:  # noqa: BLE001 — a graph the split does not fit orders by the catalogue instead
        return None
    return Attribution(weights_only_cosine=w, activations_only_cosine=a)
