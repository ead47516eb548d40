"""Drop the quantizer between a Conv and the Relu / Clip the HTP fuses into it.

Why: AIMET's QDQ export quantizes a Conv's output *and* the ReLU6 after it (DQ → Conv → Q → DQ → Clip → Q).
The HTP runs Conv + ReLU6 as one kernel and rounds once, at the activation's quantizer, so the CPU
simulation of AIMET's graph rounds one more time than the device does: on deep-sort's MobileNetV2 the 35
extra roundings cost 0.946 → 0.958 cosine on the CPU, and 0.958 is what the HTP measured. Without them
the graph is the `DQ → Conv → Relu/Clip → Q` form onnxruntime's QNN EP fuses into one quantized QNN Conv
(its conv_activation_fusion), which it does only where the activation is redundant given the Q after
it (the Q's representable range lies inside the activation's); this rule drops the quantizer only there,
so the graph it leaves is one the EP fuses and the CPU computes what the device computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

#: ops whose output the QNN EP fuses with a following Relu / Clip (conv_activation_fusion)
FUSING = frozenset({"Conv", "ConvTranspose"})
ACTIVATIONS = frozenset({"Relu", "Clip"})
_QRANGE = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127),
           np.dtype(np.uint16): (0, 65535), np.dtype(np.int16): (-32768, 32767)}


@dataclass(frozen=True)
class Dropped:
    """One Conv-output quantizer removed: the Conv and the activation now reading it directly."""

    producer: str
    activation: str


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializers, Constant nodes and DequantizeLinear of constants (AIMET quantizes Clip's bounds too)."""
    found = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:  # topological order: a DQ's constant inputs come before it
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            found[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        elif n.op_type == "DequantizeLinear" and all(i in found for i in n.input if i):
            q, scale = found[n.input[0]], found[n.input[1]]
            zp = found[n.input[2]] if len(n.input) > 2 and n.input[2] else np.zeros((), q.dtype)
            if scale.size == 1 and zp.size == 1:
                found[n.output[0]] = ((q.astype(np.float64) - zp.astype(np.float64).reshape(()))
                                      * scale.astype(np.float64).reshape(())).astype(np.float32)
    return found


def _q_range(q: onnx.NodeProto, const: dict[str, np.ndarray]) -> tuple[float, float] | None:
    """The real values a per-tensor QuantizeLinear can represent, or None when not a constant scalar Q."""
    if len(q.input) < 3 or q.input[1] not in const or q.input[2] not in const:
        return None
    scale, zp = const[q.input[1]], const[q.input[2]]
    if scale.size != 1 or zp.size != 1 or zp.dtype not in _QRANGE:
        return None
    lo, hi = _QRANGE[zp.dtype]
    s, z = float(scale.reshape(())), int(zp.reshape(()))
    return s * (lo - z), s * (hi - z)


def _activation_range(act: onnx.NodeProto, const: dict[str, np.ndarray]) -> tuple[float, float] | None:
    if act.op_type == "Relu":
        return 0.0, float("inf")
    bounds = [-float("inf"), float("inf")]
    for i, name in enumerate(act.input[1:3]):
        if not name:
            continue
        if name not in const:
            return None
        bounds[i] = float(const[name].reshape(()))
    for a in act.attribute:  # opset < 11 carries them as attributes
        if a.name in ("min", "max"):
            bounds[a.name == "max"] = a.f
    return bounds[0], bounds[1]


def drop_fused_activation_quantizers(model: onnx.ModelProto) -> list[Dropped]:
    """Rewire `Conv → Q → DQ → Relu/Clip → Q…` to `Conv → Relu/Clip → Q…` where each Q after the activation
    represents only values the activation lets through; returns what it removed (the model is edited)."""
    graph = model.graph
    const = _constants(model)
    made = {o: n for n in graph.node for o in n.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}
    dropped, gone = [], set()
    for act in graph.node:
        if act.op_type not in ACTIVATIONS:
            continue
        dq = made.get(act.input[0])
        q = made.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        conv = made.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
        if conv is None or conv.op_type not in FUSING:
            continue
        if (len(readers.get(q.input[0], [])) != 1 or len(readers.get(q.output[0], [])) != 1
                or len(readers.get(dq.output[0], [])) != 1 or {q.input[0], q.output[0], dq.output[0]} & outputs):
            continue  # another node reads the quantized Conv output: it must stay
        window = _activation_range(act, const)
        after = readers.get(act.output[0], [])
        ranges = [_q_range(n, const) if n.op_type == "QuantizeLinear" else None for n in after]
        if window is None or not after or act.output[0] in outputs or any(r is None for r in ranges):
            continue
        eps = 1e-6 * max(1.0, *(abs(v) for r in ranges for v in r))
        if not all(r[0] >= window[0] - eps and r[1] <= window[1] + eps for r in ranges):
            continue  # the activation still clips something the Q could represent: the EP would not fuse
        act.input[0] = q.input[0]
        gone |= {id(q), id(dq)}
        dropped.append(Dropped(conv.name or conv.output[0], act.name or act.output[0]))
    if gone:
        keep = [n for n in graph.node if id(n) not in gone]
        del graph.node[:]
        graph.node.extend(keep)
    return dropped
