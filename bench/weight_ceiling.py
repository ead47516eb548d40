"""How close to FP32 can 8-bit *symmetric* per-channel weights get, activations left in float (issue 14)?

    PYTHONPATH=. /work/venvs/trained/bin/python bench/weight_ceiling.py --work bench/out/quant-all2/deepsort_mobilenetv2

The HTP takes per-channel Conv weights only symmetric (tests/test_fused_activations.py pins it), so the
0.994 that asymmetric weights reach on deep-sort's MobileNetV2 is not deployable; this measures what
symmetric weights can reach with better ranges, before any activation is quantized — the ceiling every
w8a8 recipe with those weights stays under. Rows: min-max; the per-channel clipping that minimises the
weight's rounding error (a grid over the range, the MSE range setting AI Hub uses for w8a8 weights);
and min-max with one kind of Conv left in float (depthwise / pointwise / the first) — where the loss is.
Reads a `bench/trained_quant_compare.py` work directory (samples, golden outputs, the float graph).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

GRID = np.linspace(0.5, 1.0, 51)  # clipping ratios of the channel's max |w|


def symmetric(w: np.ndarray, ratio: np.ndarray | None = None) -> np.ndarray:
    """Per output channel, int8 symmetric (q in [-127, 127]) at `ratio` × max |w| (1: min-max)."""
    flat = w.reshape(w.shape[0], -1).astype(np.float64)
    top = np.maximum(np.abs(flat).max(axis=1, keepdims=True), 1e-12)
    s = top * (1.0 if ratio is None else ratio.reshape(-1, 1)) / 127
    return (np.clip(np.round(flat / s), -127, 127) * s).reshape(w.shape).astype(np.float32)


def mse_ratio(w: np.ndarray) -> np.ndarray:
    """Each channel's clipping ratio with the least squared rounding error of its weights."""
    flat = w.reshape(w.shape[0], -1).astype(np.float64)
    top = np.maximum(np.abs(flat).max(axis=1, keepdims=True), 1e-12)
    errs = []
    for r in GRID:
        s = top * r / 127
        errs.append(((np.clip(np.round(flat / s), -127, 127) * s - flat) ** 2).sum(axis=1))
    return GRID[np.argmin(np.stack(errs), axis=0)]


def input_means(work: Path, convs) -> dict[str, np.ndarray]:
    """Each Conv input's per-channel mean over the calibration samples, from the float graph."""
    import onnx
    import onnxruntime as ort

    from bot import samples as S

    model = onnx.load(str(work / "optimize/model.onnx"))
    known = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n.input[0]) for n in convs
                              if n.input[0] not in known)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    sums: dict[str, np.ndarray] = {}
    calib = S.load(work / "load/calibration.npz")
    for sample in calib:
        for name, value in zip(names, sess.run(None, sample)):
            if value.ndim == 4:
                sums[name] = sums.get(name, 0) + value.mean(axis=(0, 2, 3))
    return {n.input[0]: sums[n.input[0]] / len(calib) for n in convs}


def corrected_bias(w: np.ndarray, wq: np.ndarray, bias: np.ndarray, mean_in: np.ndarray, groups: int) -> np.ndarray:
    """Bias correction (Nagel et al., data-free quantization): the rounding error's mean effect on each
    output channel, ΔW · E[x] over the channel's inputs, taken off the bias (borders ignored)."""
    cout, cin_g = w.shape[:2]
    per_group = cout // groups
    delta = (wq - w).astype(np.float64).sum(axis=(2, 3))  # [cout, cin_g]
    shift = np.array([delta[co] @ mean_in[(co // per_group) * cin_g:(co // per_group + 1) * cin_g]
                      for co in range(cout)])
    return (bias - shift).astype(np.float32)


def main() -> int:
    import onnx
    from onnx import numpy_helper

    from bot import samples as S
    from quant_error_split import scores, session

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=str(HERE / "out/quant-all2/deepsort_mobilenetv2"))
    work = Path(ap.parse_args().work)
    samples, golden = S.load(work / "load/samples.npz"), S.load(work / "load/golden.npz")
    base = onnx.load(str(work / "optimize/model.onnx"))
    convs = [n for n in base.graph.node if n.op_type == "Conv"]
    group = {n.input[1]: next((a.i for a in n.attribute if a.name == "group"), 1) for n in convs}
    first = convs[0].input[1]

    def kind(name: str, w: np.ndarray) -> str:
        return "first" if name == first else "depthwise" if group[name] > 1 else \
            "pointwise" if w.shape[2:] == (1, 1) else "other"

    def run(label: str, rounding) -> None:
        model = onnx.load(str(work / "optimize/model.onnx"))
        for t in model.graph.initializer:
            if t.name in group:
                w = numpy_helper.to_array(t)
                t.CopyFrom(numpy_helper.from_array(rounding(t.name, w), t.name))
        pooled, worst = scores(session(model, False), samples, golden)
        print(json.dumps({"variant": label, "pooled": pooled, "worst_sample": worst}), flush=True)

    run("int8 symmetric per channel, min-max", lambda n, w: symmetric(w))
    run("int8 symmetric per channel, MSE clipping", lambda n, w: symmetric(w, mse_ratio(w)))
    means = input_means(work, convs)
    model = onnx.load(str(work / "optimize/model.onnx"))
    init = {t.name: t for t in model.graph.initializer}
    for n in convs:
        w = numpy_helper.to_array(init[n.input[1]])
        wq = symmetric(w)
        init[n.input[1]].CopyFrom(numpy_helper.from_array(wq, n.input[1]))
        if len(n.input) > 2 and n.input[2] in init:
            b = numpy_helper.to_array(init[n.input[2]])
            init[n.input[2]].CopyFrom(numpy_helper.from_array(
                corrected_bias(w, wq, b, means[n.input[0]], group[n.input[1]]), n.input[2]))
    pooled, worst = scores(session(model, False), samples, golden)
    print(json.dumps({"variant": "int8 symmetric per channel, min-max, bias correction", "pooled": pooled,
                      "worst_sample": worst}), flush=True)
    for spared in ("depthwise", "pointwise", "first"):
        run(f"min-max, {spared} Convs left in float", lambda n, w, k=spared: w if kind(n, w) == k else symmetric(w))
    return 0


if __name__ == "__main__":
    sys.exit(main())
