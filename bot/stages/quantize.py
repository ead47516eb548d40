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
from bot.errors import BadInput
from bot.records import Check, Failure, FailureKind, StageFailed, StageResult
from bot.repair.graph._host_cut import carry_host_part
from bot.stages._onnx import cpu_outputs
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
        calib = S.load(ctx.artifact("load", "calibration"))
        try:
            if opts.get("engine") == "aimet":  # bot.quant.aimet_engine: AIMET's HTP simulation and techniques
                aimet = _aimet_quantize(src, out, work, calib, precision, ctx.spec.target.soc, opts)
            else:
                self._quantize(src, out, work, calib, precision, ctx.spec.target.per_channel or opts.get("per_channel", False),
                               opts.get("calibrate_method", ctx.spec.calibration.method), opts.get("overrides", {}),
                               opts.get("min_real_range"), opts.get("weight_type", "QUInt8"))
        except BadInput:
            raise
        except Exception as e:
            raise StageFailed(Failure(self.name, FailureKind.TOOL_ERROR, f"quantization failed: {type(e).__name__}: {e}",
                                      log=str(e)[-2000:])) from None
        carry_host_part(src, out)
        deployed = onnx.load(str(out))
        encodings = encodings_of(deployed)
        saturated = saturated_biases(deployed)
        from bot.store import write_json

        write_json(work / "encodings.json", encodings)
        feeds = S.load(ctx.artifact("load", "samples"))
        golden = S.load(ctx.artifact("load", "golden"))
        outs = cpu_outputs(out, feeds)
        sim = {name: round(M.cosine(M.concat([g[name] for g in golden]), M.concat([o[j] for o in outs])), 6)
               for j, name in enumerate(golden[0])}
        bits16 = sum(1 for e in encodings.values() if e["bits"] == 16)
        checks = [Check("QDQ graph written and runs on the CPU", True),
                  Check("no bias saturates int32", not saturated, [b["bias"] for b in saturated] or "none")]
        metrics = {"precision": precision, "quantized_tensors": len(encodings), "int16_tensors": bits16,
                   "overrides": sorted(opts.get("overrides", {})), "host_cosine": sim}
        artifacts = {"onnx": "model.onnx", "encodings": "encodings.json"}
        if opts.get("engine") == "aimet":
            from bot.quant.aimet_engine import AIMET_ENCODINGS, AIMET_FLOAT

            metrics["aimet"] = {"config": aimet.config, "techniques": list(aimet.techniques), "seconds": aimet.seconds}
            artifacts |= {"aimet_encodings": AIMET_ENCODINGS, "aimet_float": AIMET_FLOAT}
        if saturated:
            raise StageFailed(Failure(self.name, FailureKind.ACCURACY,
                                      f"{len(saturated)} bias tensor(s) saturate int32 (first: {saturated[0]['bias']}): "
                                      "their layers' outputs shift by the clipped amount",
                                      details={"saturated_biases": saturated}), checks, metrics)
        return self.result(artifacts, checks, metrics)

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


def _aimet_quantize(src: Path, out: Path, work: Path, calib, precision: str, soc: str, opts: dict):
    from bot.quant import aimet_engine as A
    from bot.targets import SOCS

    why = A.unavailable()
    if why:
        raise BadInput(f"quantize.engine: aimet cannot run: {why}")
    return A.quantize(src, out, work, list(calib), precision, SOCS[soc].htp_arch, A.AimetOptions.from_opts(opts))


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
