"""Bias correction: take the mean effect of each Conv's weight rounding off its bias, in the QDQ graph.

Why: rounding a layer's weights to 8 bits shifts the mean of each of its output channels by
ΔW · E[x] (Nagel et al., "Data-Free Quantization", 2019), and in a deep stack of depthwise and pointwise
Convs those shifts add up. On deep-sort's trained MobileNetV2 with symmetric per-channel weights (all the
HTP takes), activations left in float, it is the whole loss: cosine 0.980 → 0.9994 once each bias absorbs
its shift (bench/weight_ceiling.py). The correction is computed against the weights the QDQ graph actually
holds (its DequantizeLinear constants), so it fits whichever quantizer wrote them — onnxruntime's or
AIMET's — and it only changes int32 bias constants: the graph's structure, and so what the HTP accepts,
stays as it was. E[x] is each Conv input's per-channel mean in the float graph over the calibration
samples (image borders' padding is ignored).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from bot.cpu_session import as_written

CORRECTED = frozenset({"Conv"})


@dataclass(frozen=True)
class BiasCorrection:
    """What one pass did: Convs whose bias moved, Convs it could not correct (no bias, no match), and the
    largest shift in units of the bias's own quantization step."""

    corrected: int
    skipped: int
    largest_shift_steps: float


def _dequantized(name: str, made: dict, init: dict) -> tuple[np.ndarray | None, onnx.NodeProto | None]:
    """The float value a DequantizeLinear of constants gives, and that node (None, None if not one)."""
    dq = made.get(name)
    if dq is None or dq.op_type != "DequantizeLinear" or any(i and i not in init for i in dq.input):
        return None, None
    q = numpy_helper.to_array(init[dq.input[0]]).astype(np.float64)
    scale = numpy_helper.to_array(init[dq.input[1]]).astype(np.float64)
    zp = (numpy_helper.to_array(init[dq.input[2]]).astype(np.float64) if len(dq.input) > 2 and dq.input[2]
          else np.zeros_like(scale))
    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
    if scale.size > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return (q - zp) * scale, dq


def conv_input_means(model: onnx.ModelProto, calib: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Each Conv input's per-channel mean over the calibration samples, in the float graph; keyed by the
    Conv's node name (and by its weight name, for graphs whose quantizer renamed nodes)."""
    convs = [n for n in model.graph.node if n.op_type in CORRECTED]
    sums = _output_means(model, list(dict.fromkeys(n.input[0] for n in convs)), calib)
    means = {}
    for n in convs:
        if n.input[0] in sums:
            means[n.name] = means[n.input[1]] = sums[n.input[0]]
    return means


def _output_means(model: onnx.ModelProto, names: list[str], calib: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    known = {o.name for o in m.graph.output}
    m.graph.output.extend(onnx.helper.make_empty_tensor_value_info(x) for x in names if x not in known)
    sess = ort.InferenceSession(m.SerializeToString(), as_written(), providers=["CPUExecutionProvider"])
    outs = [o.name for o in sess.get_outputs()]
    inputs = {i.name for i in sess.get_inputs()}
    sums: dict[str, np.ndarray] = {}
    for sample in calib:
        for name, value in zip(outs, sess.run(None, {k: v for k, v in sample.items() if k in inputs})):
            if name in names:
                sums[name] = sums.get(name, 0) + value.astype(np.float64).mean(axis=(0, *range(2, value.ndim)))
    return {k: v / len(calib) for k, v in sums.items()}


def correct_biases_empirically(float_model: Path, qdq: onnx.ModelProto, calib: list[dict[str, np.ndarray]]) -> int:
    """Then, Conv by Conv in graph order, match its mean output in the QDQ graph (quantized inputs, the
    corrections upstream already in) to the float graph's — in order, since correcting all at once counts
    an upstream shift again in every layer below it; returns the Convs corrected."""
    fmodel = onnx.load(str(float_model))
    fconv = {n.name: n.output[0] for n in fmodel.graph.node if n.op_type in CORRECTED and n.name}
    qconv = [n for n in qdq.graph.node if n.op_type in CORRECTED and n.name in fconv]
    want = _output_means(fmodel, [fconv[n.name] for n in qconv], calib)
    init = {t.name: t for t in qdq.graph.initializer}
    made = {o: n for n in qdq.graph.node for o in n.output}
    done = 0
    for n in qconv:
        _, bdq = _dequantized(n.input[2], made, init) if len(n.input) > 2 and n.input[2] else (None, None)
        target = want.get(fconv[n.name])
        now = _output_means(qdq, [n.output[0]], calib).get(n.output[0]) if bdq is not None else None
        if target is None or now is None or target.shape != now.shape:
            continue
        b_q = numpy_helper.to_array(init[bdq.input[0]])
        b_scale = numpy_helper.to_array(init[bdq.input[1]]).astype(np.float64).reshape(-1)
        new = np.clip(np.round(b_q.astype(np.float64) - (now - target) / b_scale), -2 ** 31, 2 ** 31 - 1)
        init[bdq.input[0]].CopyFrom(numpy_helper.from_array(new.astype(b_q.dtype), bdq.input[0]))
        done += 1
    return done


def correct_biases(float_model: Path, qdq: onnx.ModelProto, calib: list[dict[str, np.ndarray]]) -> BiasCorrection:
    """Edit `qdq`'s Conv biases in place so each output channel's mean matches the float graph's."""
    fmodel = onnx.load(str(float_model))
    float_weights = {}
    finit = {t.name: t for t in fmodel.graph.initializer}
    for n in fmodel.graph.node:
        if n.op_type in CORRECTED and n.input[1] in finit:
            float_weights[n.name] = float_weights[n.input[1]] = numpy_helper.to_array(finit[n.input[1]])
    means = conv_input_means(fmodel, calib)
    init = {t.name: t for t in qdq.graph.initializer}
    made = {o: n for n in qdq.graph.node for o in n.output}
    readers: dict[str, int] = {}
    for node in qdq.graph.node:
        for i in node.input:
            readers[i] = readers.get(i, 0) + 1
    corrected = skipped = 0
    largest = 0.0
    for n in qdq.graph.node:
        if n.op_type not in CORRECTED:
            continue
        wq, wdq = _dequantized(n.input[1], made, init)
        key = n.name if n.name in float_weights else (wdq.input[0].removesuffix("_quantized") if wdq else None)
        w, mean = float_weights.get(key), means.get(key)
        bias, bdq = _dequantized(n.input[2], made, init) if len(n.input) > 2 and n.input[2] else (None, None)
        if (wq is None or w is None or mean is None or bias is None or w.shape != wq.shape
                or readers.get(bdq.input[0], 0) != 1):  # a bias constant two Convs share: not one shift
            skipped += 1
            continue
        groups = next((a.i for a in n.attribute if a.name == "group"), 1)
        cout, cin_g = w.shape[:2]
        delta = (wq - w).reshape(cout, cin_g, -1).sum(axis=2)  # [cout, cin per group]
        per_group = cout // groups
        x = np.stack([mean[(co // per_group) * cin_g:(co // per_group + 1) * cin_g] for co in range(cout)])
        shift = (delta * x).sum(axis=1)
        b_q = numpy_helper.to_array(init[bdq.input[0]])
        b_scale = numpy_helper.to_array(init[bdq.input[1]]).astype(np.float64).reshape(-1)
        steps = shift / b_scale
        largest = max(largest, float(np.abs(steps).max()))
        new = np.clip(np.round(b_q.astype(np.float64) - steps), -2 ** 31, 2 ** 31 - 1).astype(b_q.dtype)
        init[bdq.input[0]].CopyFrom(numpy_helper.from_array(new, bdq.input[0]))
        corrected += 1
    return BiasCorrection(corrected, skipped, round(largest, 2))
