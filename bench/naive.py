"""The naive path the AIPC report starts from, as one bare script with no bot:
export → qnn_preprocess_model → onnxruntime's QNN QDQ config (8-bit) → QNN HTP backend, CPU
fallback allowed.

Returns what a person would see: whether every node landed on the HTP, and how far the outputs
are from PyTorch FP32.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings

import numpy as np


def run_naive(module, shape, samples, calibration, soc_model="57", htp_arch="75") -> dict:
    import torch

    from bot import metrics as M
    from bot.spec.schema import TargetSpec

    t = {}
    with tempfile.TemporaryDirectory() as tmp:
        f32, q = os.path.join(tmp, "m.onnx"), os.path.join(tmp, "q.onnx")
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (torch.from_numpy(samples[0]),), f32, input_names=["x"], opset_version=17,
                              dynamo=False)
        t["export"] = time.perf_counter() - t0
        with torch.no_grad():
            golden = [module(torch.from_numpy(s)) for s in samples]
        golden = [g[0] if isinstance(g, (tuple, list)) else g for g in golden]
        golden = [g.numpy() for g in golden]

        sess, result = quantize_and_place(f32, q, [{"x": c} for c in calibration], tmp, t,
                                          htp_arch=htp_arch, soc_model=soc_model, probe_target=TargetSpec())
        t0 = time.perf_counter()
        try:
            outs = [sess.run(None, {"x": s})[0] for s in samples]
        except Exception as e:  # a split graph can fail at run time: that is the naive result
            t["run"] = time.perf_counter() - t0
            return {**result, "cosine": None, "sqnr_db": None, "run_error": str(e).splitlines()[0][:240]}
        t["run"] = time.perf_counter() - t0
    ref, got = M.concat(golden), M.concat(outs)
    return {**result, "cosine": M.cosine(ref, got), "sqnr_db": M.sqnr_db(ref, got)}


def quantize_and_place(f32: str, q: str, calibration: list[dict], tmp: str, seconds: dict, *, htp_arch: str,
                       soc_model: str, probe_target) -> tuple[object, dict]:
    """The naive path's quantize and prepare steps, shared by both zoos: qnn_preprocess_model, onnxruntime's
    QNN QDQ config (8-bit) on `calibration`, then a strict HTP session; only when that is refused, the EP is
    asked which nodes it would not place and the session is made with CPU fallback. Returns the session and
    the placement row (`full_htp`, `fallback_nodes`, `rejected_ops`, `seconds`)."""
    from pathlib import Path

    import onnxruntime as ort
    import onnxruntime_qnn
    from onnxruntime.quantization import CalibrationDataReader, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config, qnn_preprocess_model

    from bot.backends.ort_qnn import OrtQnnBackend, _ort

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calibration)

        def get_next(self):
            return next(self.it, None)

    t0 = time.perf_counter()
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        pre = os.path.join(tmp, "pre.onnx")  # the documented pre-step of the QNN quantization recipe
        src = pre if qnn_preprocess_model(f32, pre) else f32
        quantize(src, q, get_qnn_qdq_config(src, Reader()))
    finally:
        os.chdir(cwd)
    seconds["quantize"] = time.perf_counter() - t0
    ort_mod = _ort()
    devs = [d for d in ort_mod.get_ep_devices() if d.ep_name == "QNNExecutionProvider"]

    def options(strict: bool):
        so = ort_mod.SessionOptions()
        so.log_severity_level = 3
        so.add_provider_for_devices(devs, {"backend_path": onnxruntime_qnn.get_qnn_htp_path(),
                                           "htp_arch": htp_arch, "soc_model": soc_model})
        if strict:
            so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        return so

    t0 = time.perf_counter()
    try:  # full placement is what a strict session accepts; only on refusal ask the EP why
        sess = ort.InferenceSession(q, options(True))
        full, fallback, rejected = True, 0, []
    except Exception:
        placement = OrtQnnBackend().probe(Path(q), probe_target)
        full, fallback, rejected = False, len(placement.fallback_nodes), placement.rejected
        sess = ort.InferenceSession(q, options(False))
    seconds["prepare"] = time.perf_counter() - t0
    return sess, {"full_htp": full, "fallback_nodes": fallback, "rejected_ops": sorted({n.op for n in rejected}),
                  "seconds": seconds}
