"""A 22.05 kHz WAV → basic-pitch's network input: one 43844-sample window (padded with zeros) through
basic-pitch's own CQT front-end on the host, in float32: the normalized log-CQT [1, 172, 309, 1].

The front-end is cut out of basic-pitch's installed ONNX (icassp_2022) at its normalized log-CQT, so
the packaged app needs basic-pitch (the wheel) beside onnxruntime, as any basic-pitch app has it.

Why on the host: the graph computes a constant-Q transform with fixed Conv kernels, then the power |CQT|², then
10·log10(power + 1e-10), normalized per window by its min and max, then a fixed affine (folded batch
norm). The power spans ~2e-15 … 5e2 (the 1e-10 floor sets −100 dB, 127 dB below the peak): in fp16,
4–54 % of the bins (every one below 6e-8) and the 1e-10 itself flush to zero, which moves the floor
and with it the whole normalization (log-CQT cosine vs FP32 0.82–0.95 before any learned layer);
16-bit integers cover 96 dB (0.60–0.87), 8 bits nothing. So no HTP precision carries the front-end;
the host computes it, as apps compute log-mel features, and the network from there is deployed.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

RATE, WINDOW = 22050, 43844
CUT = "model_1/batch_normalization/FusedBatchNormV3;model_1/batch_normalization/FusedBatchNormV33"
FEATURES = "log_cqt"  # the deployed network's input: the normalized log-CQT, [1, 172, 309, 1]
FEATURES_SHAPE = [1, 172, 309, 1]
AUDIO = "serving_default_input_2:0"


def preprocess(path: Path) -> dict[str, np.ndarray]:
    import soundfile as sf

    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    assert sr == RATE, f"{path}: expected {RATE} Hz, got {sr}"
    audio = audio.mean(axis=1)[:WINDOW]
    x = np.pad(audio, (0, WINDOW - len(audio)))[None, :, None].astype(np.float32)
    return {FEATURES: _front().run(None, {AUDIO: x})[0].astype(np.float32)}


def installed_model() -> Path:
    import importlib.util

    return Path(importlib.util.find_spec("basic_pitch").submodule_search_locations[0]) / "saved_models/icassp_2022/nmp.onnx"


@lru_cache(maxsize=1)
def _front():
    import tempfile

    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "front.onnx"
        split(installed_model(), path, None)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def split(full: Path, front_out: Path | None, net_out: Path | None) -> None:
    """Write the network (features → the three outputs) and/or the front-end (audio → features)."""
    import onnx
    from onnx.utils import Extractor

    from onnxruntime.tools.onnx_model_utils import make_input_shape_fixed

    model = onnx.load(str(full))
    make_input_shape_fixed(model.graph, AUDIO, [1, WINDOW, 1])  # static shapes name the cut's value_info
    model = onnx.shape_inference.infer_shapes(model)
    outputs = [o.name for o in model.graph.output]
    ex = Extractor(model)
    if net_out is not None:
        net = ex.extract_model([CUT], outputs)
        _rename(net, CUT, FEATURES)
        del net.graph.value_info[:]  # the full graph's inference left symbolic dims (unk__…) on the cut
        for d, v in zip(net.graph.input[0].type.tensor_type.shape.dim, FEATURES_SHAPE):
            d.Clear()
            d.dim_value = v
        onnx.save(onnx.shape_inference.infer_shapes(net), str(net_out))
    if front_out is not None:
        fe = ex.extract_model([AUDIO], [CUT])
        _rename(fe, CUT, FEATURES)
        onnx.save(fe, str(front_out))


def _rename(model, old: str, new: str) -> None:
    for n in model.graph.node:
        n.input[:] = [new if i == old else i for i in n.input]
        n.output[:] = [new if o == old else o for o in n.output]
    for v in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        if v.name == old:
            v.name = new
