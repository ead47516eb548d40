"""Stage 5, quantize: calibration → QDQ graph with onnxruntime's QNN quantization helpers.

w8a8 / w8a16 go through `qnn_preprocess_model` + `get_qnn_qdq_config` + `quantize`; fp16 keeps the
float graph (the HTP runs it in fp16). Repairs steer it through `options["quantize"]`:
`overrides` (tensor → {quant_type}) for mixed precision, `per_channel`, `calibrate_method`,
`precision` (a different precision than the definition's, e.g. w8a8 → w8a16 or fp16),
`min_real_range` (the smallest activation range the quantizer keeps; the QNN config's 1e-4
zeroes tensors whose real range is smaller), `weight_type` (QInt8: signed symmetric weights).
The stage fails when a bias saturates int32: bias scale = input scale × weight scale, so a tiny
input range (a detector's class branch with random or sparse weights) pushes a large bias past
±2³¹ and the layer's output shifts by the clipped amount on every backend; onnxruntime only
widens the weight scale to prevent it for signed symmetric weights.
Writes `model.onnx` (the graph to deploy) and `encodings.json` (scale/zero-point per tensor), the
exchange format the SDK quantizers take as overrides. The host-side QDQ simulation's agreement
with the golden is reported as a metric; the device decides pass/fail in `validate`.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from bot import metrics as M
from bot import samples as S
from bot.records import Check, Failure, FailureKind, StageFailed, StageResult
from bot.repair.graph._host_cut import carry_host_part
from bot.stages._onnx import cpu_outputs, stage_feeds
from bot.stages.base import Stage, StageContext

ACTIVATION = {"w8a8": "QUInt8", "w8a16": "QUInt16"}
CALIBRATION = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


class QuantizeStage(Stage):
    name = "quantize"
    depends_on = ("target", "calibration")

    def run(self, ctx: StageContext, work: Path) -> StageResult:
        src = ctx.artifact("optimize", "onnx")
        out = work / "model.onnx"
        opts = ctx.opts("quantize")
        precision = opts.get("precision", ctx.spec.target.precision)
        if precision == "fp16":
            shutil.copyfile(src, out)
            return self.result({"onnx": "model.onnx"}, [Check("float graph kept for fp16 on HTP", True)],
                               {"precision": "fp16"})
        calib = stage_feeds(ctx, "calibration")
        try:
            self._quantize(src, out, work, calib, precision, ctx.spec.target.per_channel or opts.get("per_channel", False),
                           opts.get("calibrate_method", ctx.spec.calibration.method), opts.get("overrides", {}),
                           opts.get("min_real_range"), opts.get("weight_type", "QUInt8"))
        except Exception as e:
            raise StageFailed(Failure(self.name, FailureKind.TOOL_ERROR, f"quantization failed: {type(e).__name__}: {e}",
                                      log=str(e)[-2000:])) from None
        carry_host_part(src, out)
        deployed = onnx.load(str(out))
        encodings = encodings_of(deployed)
        saturated = saturated_biases(deployed)
        from bot.store import write_json

        write_json(work / "encodings.json", encodings)
        feeds = stage_feeds(ctx, "samples")
        golden = S.load(ctx.artifact("load", "golden"))
        try:  # onnxruntime checks the QDQ graph it was just given (e.g. per-axis scale shapes) here
            outs = cpu_outputs(out, feeds)
        except Exception as e:  # noqa: BLE001 — a structured failure the repair loop can classify
            raise StageFailed(qdq_check_failure(self.name, deployed, e)) from None
        sim = {name: round(M.cosine(M.concat([g[name] for g in golden]), M.concat([o[j] for o in outs])), 6)
               for j, name in enumerate(golden[0])}
        bits16 = sum(1 for e in encodings.values() if e["bits"] == 16)
        checks = [Check("QDQ graph written and runs on the CPU", True),
                  Check("no bias saturates int32", not saturated, [b["bias"] for b in saturated] or "none")]
        metrics = {"precision": precision, "quantized_tensors": len(encodings), "int16_tensors": bits16,
                   "overrides": sorted(opts.get("overrides", {})), "host_cosine": sim}
        if saturated:
            raise StageFailed(Failure(self.name, FailureKind.ACCURACY,
                                      f"{len(saturated)} bias tensor(s) saturate int32 (first: {saturated[0]['bias']}): "
                                      "their layers' outputs shift by the clipped amount",
                                      details={"saturated_biases": saturated}), checks, metrics)
        return self.result({"onnx": "model.onnx", "encodings": "encodings.json"}, checks, metrics)

    @staticmethod
    def _quantize(src: Path, out: Path, work: Path, calib, precision, per_channel, method, overrides,
                  min_real_range=None, weight_type="QUInt8") -> None:
        from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantType, quantize
        from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config, qnn_preprocess_model

        logging.getLogger().setLevel(logging.ERROR)

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = iter(calib)

            def get_next(self):
                return next(self.it, None)

        pre = work / "preprocessed.onnx"
        src = _without_metadata(src, work / "no-metadata.onnx")
        model_in = pre if qnn_preprocess_model(str(src), str(pre), fuse_layernorm=True) else src
        init_overrides = {t: [{"quant_type": getattr(QuantType, o["quant_type"])}] for t, o in overrides.items()}
        cfg = get_qnn_qdq_config(str(model_in), Reader(), calibrate_method=getattr(CalibrationMethod, CALIBRATION[method]),
                                 activation_type=getattr(QuantType, ACTIVATION[precision]),
                                 weight_type=getattr(QuantType, weight_type), per_channel=per_channel,
                                 init_overrides=init_overrides or None)
        if min_real_range is not None:  # the QNN config widens every range to ≥ 1e-4 by default
            cfg.extra_options["MinimumRealRange"] = float(min_real_range)
        cwd = os.getcwd()
        try:  # the calibrator writes augmented models into the working directory
            os.chdir(work)
            quantize(str(model_in), str(out), cfg)
        finally:
            os.chdir(cwd)
        for tmp in (pre, work / "no-metadata.onnx"):
            tmp.unlink(missing_ok=True)


PER_AXIS_SCALE = "For per axis quantization"


def qdq_check_failure(stage: str, model: onnx.ModelProto, error: Exception) -> Failure:
    """The written QDQ graph does not run on onnxruntime's CPU. A per-axis scale onnxruntime
    refuses (magika's Gemm bias [1, N] gets its weight's per-channel axis 0) is named with the
    tensors that carry it and the weights whose per-channel axis they inherit, so a repair can
    quantize exactly those weights per tensor."""
    text = f"{type(error).__name__}: {error}"
    details: dict = {}
    message = f"the QDQ graph does not run on the CPU: {text[:300]}"
    if PER_AXIS_SCALE in text:
        details["per_axis_rejected"], details["per_axis_weights"] = per_axis_suspects(model)
        message = (f"the QDQ graph does not run on the CPU: {text[text.index(PER_AXIS_SCALE):].strip()[:120]} "
                   f"(on {', '.join(details['per_axis_rejected']) or 'an unnamed tensor'})")
    return Failure(stage, FailureKind.TOOL_ERROR, message, log=text[-2000:], details=details)


def per_axis_suspects(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    """Tensors whose per-axis Q/DQ scale is not a 1-D tensor of the axis' size, and the weights
    (input 1) of the ops that read them, whose per-channel axis they were given."""
    inits = {i.name: i for i in model.graph.initializer}
    bad_outputs, tensors, weights = set(), [], []
    for node in model.graph.node:
        axis = next((a.i for a in node.attribute if a.name == "axis"), None)
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or axis is None or len(node.input) < 2:
            continue
        scale, data = inits.get(node.input[1]), inits.get(node.input[0])
        if scale is None or data is None:
            continue
        dims = list(data.dims)
        size = dims[axis] if -len(dims) <= axis < len(dims) else None
        if len(scale.dims) != 1 or scale.dims[0] != size:
            tensors.append(node.input[0].removesuffix("_quantized"))
            bad_outputs.add(node.output[0])
    dq_source = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") and bad_outputs & set(node.input) and \
                len(node.input) > 1 and node.input[1] in dq_source:
            w = dq_source[node.input[1]].removesuffix("_quantized")
            if w not in weights:
                weights.append(w)
    return tensors, weights


def _without_metadata(src: Path, dst: Path) -> Path:
    """onnxruntime 1.32's `qnn_preprocess_model` fails on any metadata_props (it dict-updates a
    protobuf list), so the graph is quantized without them; `carry_host_part` puts ours back."""
    m = onnx.load(str(src), load_external_data=False)
    if not len(m.metadata_props):
        return src
    m = onnx.load(str(src))
    del m.metadata_props[:]
    onnx.save(m, str(dst))
    return dst


def saturated_biases(model: onnx.ModelProto) -> list[dict]:
    """int32 biases with an element at the type's limit: clipped when quantized, not rounded."""
    inits = {i.name: i for i in model.graph.initializer}
    lo, hi = np.iinfo(np.int32).min, np.iinfo(np.int32).max
    out = []
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in inits:
            continue
        t = inits[node.input[0]]
        if t.data_type != onnx.TensorProto.INT32:
            continue
        a = numpy_helper.to_array(t)
        n = int(np.count_nonzero((a <= lo) | (a >= hi)))
        if n:
            out.append({"bias": t.name, "elements": n, "of": int(a.size)})
    return out


def encodings_of(model: onnx.ModelProto) -> dict[str, dict]:
    """Scale, zero-point and bit width of every quantized tensor (from its QuantizeLinear)."""
    inits = {i.name: i for i in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or len(node.input) < 3:
            continue
        scale, zp = inits.get(node.input[1]), inits.get(node.input[2])
        if scale is None or zp is None:
            continue
        z = numpy_helper.to_array(zp)
        out[node.input[0]] = {"scale": numpy_helper.to_array(scale).tolist(), "offset": z.tolist(),
                              "dtype": str(z.dtype), "bits": int(np.dtype(z.dtype).itemsize * 8)}
    return out
