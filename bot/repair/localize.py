"""Failure localization: where along the graph does the deployed model part from FP32?

Both graphs get their intermediate tensors exposed as outputs: the optimized float graph, and the
QDQ graph whose activations are the dequantized values (`<t>_DequantizeLinear_Output`, which the
QNN quantizer names after the float tensor `<t>`). Both run on ONNX Runtime's CPU, which executes
QDQ arithmetic exactly as quantized (scales, zero points, rounding), so the per-layer error is the
quantization error the device sees, without a second HTP compile. The first layer whose cosine
falls below the bar is named; the planner keeps the worst layers in 16 bits.

Given a `device` runner, the same exposed QDQ graph also runs on the backend (the HTP): a layer
whose device cosine falls far below its CPU cosine is not quantization error but the device
computing that op differently — the planner answers it with a graph rule for that op, not bits.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from bot import metrics as M

DQ_SUFFIX = "_DequantizeLinear_Output"


@dataclass
class LayerError:
    tensor: str  # the float tensor's name (what a quantization override names)
    op: str  # the op that produces it
    cosine: float
    sqnr_db: float
    index: int  # topological position
    sqnr_drop_db: float = 0.0  # how much worse than the worst of its inputs: error this layer adds
    inputs: tuple[str, ...] = ()  # quantized activations it reads: where its error may come from
    device_cosine: float | None = None  # the same tensor computed on the backend
    #: the lowest cosine over the samples one at a time, and which sample: validate judges each
    #: sample, and an error on quiet inputs (silero-vad's silent first steps) vanishes when pooled
    worst_cosine: float | None = None
    worst_sample: int | None = None
    #: the most SQNR this layer itself loses on any one sample (its inputs' SQNR on that sample minus
    #: its own): a squared tensor drops a quiet sample from 40 dB to 1 dB where the pooled drop is ~0
    worst_drop_db: float = 0.0


def _expose(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(onnx.helper.make_value_info(n, onnx.TypeProto()))
    return m


def _run(model: onnx.ModelProto, feeds: list[dict]) -> list[dict[str, np.ndarray]]:
    import onnxruntime as ort  # deferred: a slow import; only running a graph needs it

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    wanted = {i.name for i in sess.get_inputs()}
    return [dict(zip(names, sess.run(None, {k: v for k, v in f.items() if k in wanted}))) for f in feeds]


Runner = Callable[[onnx.ModelProto, list[dict]], list[dict[str, np.ndarray]]]


def localize(float_onnx: Path, qdq_onnx: Path, feeds: list[dict[str, np.ndarray]], bar: float = 0.99,
             device: Runner | None = None) -> tuple[list[LayerError], LayerError | None]:
    fm = onnx.load(str(float_onnx))
    qm = onnx.load(str(qdq_onnx))
    q_tensors = {o for n in qm.graph.node for o in n.output}
    producers, order = {}, []
    for i, node in enumerate(fm.graph.node):
        for o in node.output:
            if o + DQ_SUFFIX in q_tensors:
                producers[o] = (node, i)
                order.append(o)
    if not order:
        return [], None
    made_by = {o: node for node in fm.graph.node for o in node.output}

    def sources(node) -> tuple[str, ...]:
        """The quantized activations a node's error can come from: its exposed inputs, and for an
        input the QDQ graph has no Q/DQ pair of (onnxruntime folded a Clip/Relu into the next Q,
        PP-OCR's `Add → Clip`), the nearest exposed tensors upstream of it. Without them a layer
        looked as if it made all its error itself (its drop measured from 60 dB)."""
        found: list[str] = []
        stack, seen = [i for i in node.input if i], set()
        while stack:
            t = stack.pop(0)
            if t in seen:
                continue
            seen.add(t)
            if t in producers:
                found.append(t)
            elif t in made_by and len(seen) < 64:
                stack.extend(i for i in made_by[t].input if i)
        return tuple(dict.fromkeys(found))
    f_out = _run(_expose(fm, order), feeds)
    exposed = _expose(qm, [t + DQ_SUFFIX for t in order])
    q_out = _run(exposed, feeds)
    d_out = device(exposed, feeds) if device is not None else None
    layers: dict[str, LayerError] = {}
    per_sqnr: dict[str, np.ndarray] = {}  # per-sample SQNR, capped at SQNR_CAP (exact = the cap)
    for t in order:
        ref = M.concat([s[t] for s in f_out])
        got = M.concat([s[t + DQ_SUFFIX] for s in q_out])
        node, idx = producers[t]
        cos = M.cosine(ref, got) if np.any(ref) else (1.0 if not np.any(got) else float("nan"))
        err = LayerError(t, node.op_type, cos, M.sqnr_db(ref, got), idx, inputs=sources(node))
        per = [_cosine_or_one(f[t], q[t + DQ_SUFFIX]) for f, q in zip(f_out, q_out)]
        err.worst_sample = int(np.argmin(per))
        err.worst_cosine = float(per[err.worst_sample]) if len(feeds) > 1 else cos
        per_sqnr[t] = np.array([_capped_sqnr(f[t], q[t + DQ_SUFFIX]) for f, q in zip(f_out, q_out)])
        ins_s = [per_sqnr[i] for i in err.inputs if i in per_sqnr]
        base_s = np.min(ins_s, axis=0) if ins_s else np.full(len(feeds), SQNR_CAP)
        err.worst_drop_db = round(float(np.max(base_s - per_sqnr[t])), 3)
        if d_out is not None:
            err.device_cosine = M.cosine(ref, M.concat([s[t + DQ_SUFFIX] for s in d_out]))
        ins = [layers[i].sqnr_db for i in err.inputs if i in layers]
        base = min(ins) if ins else float("inf")
        err.sqnr_drop_db = (base - err.sqnr_db) if math.isfinite(base) and math.isfinite(err.sqnr_db) else (
            0.0 if not math.isfinite(err.sqnr_db) or err.sqnr_db > 60 else 60 - err.sqnr_db)
        layers[t] = err
    ordered = sorted(layers.values(), key=lambda e: e.index)
    first_bad = next((e for e in ordered if not (e.cosine >= bar)), None)
    return ordered, first_bad


LOSS_DB = 20.0  # a layer that loses this much SQNR on one sample is where that sample's error is made
SQNR_CAP = 60.0  # dB: an exact (or all-zero) tensor counts as this, so a drop is always finite


def _capped_sqnr(ref: np.ndarray, got: np.ndarray) -> float:
    v = M.sqnr_db(ref, got) if np.any(ref) else (SQNR_CAP if not np.any(got) else -SQNR_CAP)
    return float(np.clip(v, -SQNR_CAP, SQNR_CAP)) if v == v else -SQNR_CAP


def _cosine_or_one(ref: np.ndarray, got: np.ndarray) -> float:
    """A sample's cosine; an all-zero reference reproduced as zeros agrees (a zero state), and a
    NaN (a zero vector against a non-zero one) counts as the worst agreement."""
    if not np.any(ref):
        return 1.0 if not np.any(got) else -1.0
    c = M.cosine(ref, got)
    return -1.0 if c != c else c


def losing_on_some_sample(layers: list[LayerError], ops: tuple[str, ...], bar: float = 0.99,
                          min_drop_db: float = LOSS_DB) -> list[LayerError]:
    """Layers of `ops` that by themselves lose one sample: below the bar on it and ≥ `min_drop_db`
    worse than their inputs there. Not only the first bad layer: basic-pitch's CQT Convs already
    sit below the bar on one window, harmlessly, before the squares that lose its quiet bins."""
    return [e for e in sorted(layers, key=lambda e: e.index) if e.op in ops and e.worst_cosine is not None
            and not e.worst_cosine >= bar and e.worst_drop_db >= min_drop_db]


def divergent(layers: list[LayerError], bar: float = 0.99, margin: float = 0.05) -> list[LayerError]:
    """Layers the device computes far worse than quantization alone explains, first one first
    (the later ones are usually its downstream echo)."""
    out = []
    for e in layers:
        d = e.device_cosine
        if d is not None and (d != d or (d < bar and d < e.cosine - margin)):
            out.append(e)
    return out


def worst_layers(layers: list[LayerError], fraction: float, minimum: int = 1) -> list[str]:
    """The layers that add the most error, with the activations they read: about a `fraction` of
    all quantized activations. Inputs count because an error often shows only downstream: a
    tensor with a huge offset quantizes with a small *relative* error, and the layer that removes
    the offset is where the loss appears."""
    k = max(minimum, int(math.ceil(fraction * len(layers))))
    ranked = sorted(layers, key=lambda e: (-(e.sqnr_drop_db if math.isfinite(e.sqnr_drop_db) else 99), e.index))
    chosen: list[str] = []
    for e in ranked:
        if len(chosen) >= k:
            break
        for t in (e.tensor, *e.inputs):
            if t not in chosen:
                chosen.append(t)
    return chosen


def as_manifest(layers: list[LayerError], first_bad: LayerError | None) -> dict:
    def clean(v):
        return v if isinstance(v, float) and math.isfinite(v) else None

    div = divergent(layers)
    return {"first_bad_layer": first_bad.tensor if first_bad else None,
            "first_bad_op": first_bad.op if first_bad else None,
            "first_device_divergence": div[0].tensor if div else None,
            "layers": [{**asdict(e), "cosine": clean(e.cosine), "sqnr_db": clean(e.sqnr_db),
                        "sqnr_drop_db": clean(e.sqnr_drop_db),
                        "device_cosine": clean(e.device_cosine) if e.device_cosine is not None else None,
                        "worst_cosine": clean(e.worst_cosine) if e.worst_cosine is not None else None}
                       for e in layers]}
