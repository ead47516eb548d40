"""Activation ranges from calibration data: min-max, percentile and MSE-optimal clipping.

Why not onnxruntime's calibrators for all of them: its percentile calibrator builds a histogram of
|x| and cuts both ends from it, so a signed tensor's lower bound lands at ≥ 0 and its negative
values are clipped; it builds that histogram in float32 without a range, which fails ("Too many
bins for data range") on a tensor whose values differ by a few ulps; it keeps every sample's
activations in memory; and it has no MSE range setting, the one AI Hub uses for w8a8. Here each
tensor's histogram is built in two streaming passes over the calibration samples (min/max, then
2048 bins in float64 over that range) and the ranges go to onnxruntime's quantizer as
`rmin`/`rmax` tensor overrides, so the QDQ graph is still written by onnxruntime.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

BINS = 2048
PERCENTILE = 99.999  # the share of values kept inside the range (onnxruntime's default)
MSE_GRID = 48  # candidate clip points per side
METHODS = ("percentile", "mse")  # the range settings computed here (min-max and entropy: onnxruntime's)
FIXED_OUTPUT_OPS = {"Softmax", "Sigmoid", "Tanh"}  # onnxruntime / the QNN config fix their output encodings


def float_tensors(model: onnx.ModelProto) -> list[str]:
    """Activations onnxruntime's quantizer may give a range: float graph inputs and node outputs."""
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
    inferred = onnx.shape_inference.infer_shapes(model)
    vi = {v.name: v for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    names += [o for n in model.graph.node if n.op_type != "Constant" for o in n.output if o]
    return [t for t in names if t in vi and vi[t].type.tensor_type.elem_type in (onnx.TensorProto.FLOAT,
                                                                                   onnx.TensorProto.FLOAT16)]


def _session(model: onnx.ModelProto, outputs: list[str]):
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
    import onnxruntime as ort  # deferred: a slow import; only running a graph needs it

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for t in outputs:
        if t not in have:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess, {i.name for i in sess.get_inputs()}


def activation_ranges(model_path: Path, calib, method: str, bits: dict[str, int] | None = None,
                      default_bits: int = 8) -> dict[str, tuple[float, float]]:
    """(rmin, rmax) per activation tensor for `method` in minmax | percentile | mse; `bits` gives the
    activation width of tensors not at `default_bits` (MSE weighs rounding against clipping)."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
    model = onnx.load(str(model_path))
    names = float_tensors(model)
    sess, inputs = _session(model, names)
    lo = dict.fromkeys(names, np.inf)
    hi = dict.fromkeys(names, -np.inf)
    for feed in calib:
        for t, v in zip(names, sess.run(names, {k: x for k, x in feed.items() if k in inputs})):
            v = np.asarray(v, dtype=np.float64)
            v = v[np.isfinite(v)]
            if v.size:
                lo[t], hi[t] = min(lo[t], float(v.min())), max(hi[t], float(v.max()))
    names = [t for t in names if np.isfinite(lo[t])]
    if method == "minmax":
        return {t: (lo[t], hi[t]) for t in names}
    hists = {t: np.zeros(BINS, np.float64) for t in names}
    for feed in calib:
        for t, v in zip(names, sess.run(names, {k: x for k, x in feed.items() if k in inputs})):
            if t in hists:
                hists[t] += _hist(np.asarray(v, np.float64), lo[t], hi[t])
    pick = {"percentile": lambda h, a, b, n: percentile_range(h, a, b), "mse": mse_range}[method]
    bits = bits or {}
    return {t: pick(hists[t], lo[t], hi[t], bits.get(t, default_bits)) for t in names}


def _hist(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    v = v[np.isfinite(v)].ravel()
    if hi <= lo:  # a constant tensor: every value in one bin
        h = np.zeros(BINS)
        h[0] = v.size
        return h
    return np.histogram(np.clip(v, lo, hi), bins=BINS, range=(lo, hi))[0].astype(np.float64)


def _centres(lo: float, hi: float) -> np.ndarray:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    edges = np.linspace(lo, hi, BINS + 1)
    return (edges[:-1] + edges[1:]) / 2


def percentile_range(hist: np.ndarray, lo: float, hi: float, percentile: float = PERCENTILE) -> tuple[float, float]:
    """Cut (100 − percentile)/2 % of the values off each end of the signed histogram."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    if hi <= lo or hist.sum() == 0:
        return lo, hi
    edges = np.linspace(lo, hi, BINS + 1)
    cdf = np.cumsum(hist) / hist.sum()
    cut = (100.0 - percentile) / 200.0
    left = edges[int(np.searchsorted(cdf, cut))]
    right = edges[min(int(np.searchsorted(cdf, 1.0 - cut)) + 1, BINS)]
    return float(left), float(right)


def mse_range(hist: np.ndarray, lo: float, hi: float, bits: int = 8) -> tuple[float, float]:
    """The clip range [a, b] (zero kept inside, as onnxruntime keeps it) whose asymmetric
    `bits`-bit quantization has the least expected squared error over the histogram: the
    search weighs rounding error inside the range against clipping error outside it."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    data_range = (lo, hi)  # the histogram's bins span the data, the range to search spans zero too
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi <= lo or hist.sum() == 0 or data_range[1] <= data_range[0]:
        return lo, hi
    centres = _centres(*data_range)
    fractions = np.linspace(1.0 / MSE_GRID, 1.0, MSE_GRID)
    cand_a = np.unique(lo * fractions) if lo < 0 else np.array([0.0])
    cand_b = np.unique(hi * fractions) if hi > 0 else np.array([0.0])
    levels = 2 ** bits - 1
    best, best_err = (lo, hi), np.inf
    w = hist / hist.sum()
    for a in cand_a:
        b = cand_b[cand_b > a] if np.any(cand_b > a) else np.array([a + 1e-12])
        step = (b - a) / levels  # one row per candidate b
        q = np.clip(np.round((centres[None, :] - a) / step[:, None]), 0, levels) * step[:, None] + a
        err = ((centres[None, :] - q) ** 2 * w[None, :]).sum(axis=1)
        i = int(np.argmin(err))
        if err[i] < best_err:
            best, best_err = (float(a), float(b[i])), float(err[i])
    return best


def range_overrides(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]]) -> dict[str, dict]:
    """`rmin`/`rmax` overrides for onnxruntime's quantizer. Outputs whose encoding onnxruntime fixes
    (Softmax [0, 1], 16-bit Sigmoid/Tanh) keep it; the input of a Relu/Clip that is its only
    reader takes the Relu's range, as onnxruntime does, so the removed Relu still clips."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    made_by = {o: n for n in model.graph.node for o in n.output}
    readers: dict[str, int] = {}
    for n in model.graph.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    out = {t: r for t, r in ranges.items() if not (t in made_by and made_by[t].op_type in FIXED_OUTPUT_OPS)}
    for n in model.graph.node:
        if n.op_type in ("Relu", "Clip") and readers.get(n.input[0]) == 1 and n.output[0] in out:
            out[n.input[0]] = out[n.output[0]]
    return {t: {"rmin": np.array(a, np.float32), "rmax": np.array(b, np.float32)} for t, (a, b) in out.items()}
