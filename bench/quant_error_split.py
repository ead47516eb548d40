"""Where w8a8 loses accuracy on a trained model, and why two simulations of one QDQ graph disagree (issue 14).

    PYTHONPATH=. /work/venvs/trained/bin/python bench/quant_error_split.py --work bench/out/quant-compare/deepsort_mobilenetv2

Reads a `bench/trained_quant_compare.py` work directory (its load stage's samples and golden outputs, its
optimize stage's float graph, the QDQ graph of every variant it quantized) and prints, against FP32:

- every QDQ graph on onnxruntime's CPU twice: fused (extended optimizations: DQ → Conv → Q becomes
  QLinearConv, whose AVX2 kernel without VNNI saturates uint8 × int8 pair sums in 16 bits) and as
  written (basic optimizations, what the bot's CPU check now uses);
- the same graphs with the quantizer between a Conv and the Clip after it removed (a Conv + ReLU6
  supergroup, which AIMET's HTP config declares but did not apply here);
- the float graph with only its Conv weights rounded to 8 bits per output channel (activations in
  float): uint8 asymmetric (onnxruntime's QNN weights) and int8 symmetric (AIMET's HTP config): the
  accuracy left for any activation-range technique to work with.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def scores(sess, samples, golden) -> tuple[float, float]:
    from bot import metrics as M

    name, inp = list(golden[0])[0], sess.get_inputs()[0].name
    outs = [sess.run(None, {inp: s[inp]})[0] for s in samples]
    pooled = M.cosine(M.concat([g[name] for g in golden]), M.concat(outs))
    return round(float(pooled), 4), round(float(min(M.cosine(g[name], o) for g, o in zip(golden, outs))), 4)


def session(model, fused: bool):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if fused
                                   else ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def without_conv_clip_quantizers(model):
    """Clip reads its Conv's output directly, skipping the Q → DQ between them; returns how many."""
    made = {o: n for n in model.graph.node for o in n.output}
    removed = 0
    for n in model.graph.node:
        dq = made.get(n.input[0]) if n.op_type == "Clip" else None
        q = made.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if q is not None and q.op_type == "QuantizeLinear" and getattr(made.get(q.input[0]), "op_type", "") == "Conv":
            n.input[0] = q.input[0]
            removed += 1
    return removed


def round_weights(w, symmetric: bool):
    """Per output channel, min-max: uint8 asymmetric or int8 symmetric (q in [-127, 127])."""
    flat = w.reshape(w.shape[0], -1).astype(np.float64)
    if symmetric:
        s = np.maximum(np.abs(flat).max(axis=1, keepdims=True), 1e-12) / 127
        return (np.clip(np.round(flat / s), -127, 127) * s).reshape(w.shape).astype(np.float32)
    lo, hi = np.minimum(flat.min(axis=1, keepdims=True), 0), np.maximum(flat.max(axis=1, keepdims=True), 0)
    s = np.maximum(hi - lo, 1e-12) / 255
    z = np.round(-lo / s)
    return ((np.clip(np.round(flat / s) + z, 0, 255) - z) * s).reshape(w.shape).astype(np.float32)


def main() -> int:
    import onnx
    from onnx import numpy_helper

    from bot import samples as S

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=str(ROOT / "bench/out/quant-compare/deepsort_mobilenetv2"))
    work = Path(ap.parse_args().work)
    samples, golden = S.load(work / "load/samples.npz"), S.load(work / "load/golden.npz")
    for q in sorted(work.glob(".work/quantize-*/model.onnx")):
        res = json.loads((q.parent / "result.json").read_text())["metrics"]
        model = onnx.load(str(q))
        row = {"variant": f"{res['precision']} {res['technique']}", "dir": q.parent.name,
               "fused": scores(session(model, True), samples, golden),
               "as written": scores(session(model, False), samples, golden)}
        n = without_conv_clip_quantizers(model)
        if n:
            row[f"as written, {n} Conv→Clip quantizers removed"] = scores(session(model, False), samples, golden)
        print(json.dumps(row), flush=True)
    for symmetric in (False, True):
        model = onnx.load(str(work / "optimize/model.onnx"))
        convw = {n.input[1] for n in model.graph.node if n.op_type == "Conv"}
        for t in model.graph.initializer:
            if t.name in convw:
                t.CopyFrom(numpy_helper.from_array(round_weights(numpy_helper.to_array(t), symmetric), t.name))
        print(json.dumps({"variant": "8-bit weights only (per channel, min-max, "
                                     + ("int8 symmetric" if symmetric else "uint8 asymmetric") + "), float activations",
                          "as written": scores(session(model, False), samples, golden)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
