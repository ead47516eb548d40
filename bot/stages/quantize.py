"""Stage 5, quantize: calibration → QDQ graph with onnxruntime's QNN quantization helpers.

w8a8 / w8a16 go through `qnn_preprocess_model` + `get_qnn_qdq_config` + `quantize`; fp16 keeps the
float graph (the HTP runs it in fp16). The definition's `quantization` section decides the
defaults (`QuantSettings`): per-channel weight scales on Conv / ConvTranspose / Gemm / MatMul
(trained weights need them), the range setting, tensors pinned to int16 or fp16; a trailing
Softmax too fine for 8 bits gets a 16-bit output. `quantize_with_ort` is the engine boundary:
(float graph, calibration, settings) → QDQ graph. Repairs steer it through its options
(`QuantizeOptions`, each knob with its reason): mixed precision, per-channel weights, the range
setting, another precision than the definition's, the smallest range kept, signed weights, AIMET.
The stage fails when a bias saturates int32: bias scale = input scale × weight scale, so a tiny
input range (a detector's class branch with random or sparse weights) pushes a large bias past
±2³¹ and the layer's output shifts by the clipped amount on every backend; onnxruntime only
widens the weight scale to prevent it for signed symmetric weights.
Writes `model.onnx` (the graph to deploy) and `encodings.json` (scale/zero-point per tensor), the
exchange format the SDK quantizers take as overrides. The host-side QDQ simulation's agreement
with the golden is reported as a metric; the device decides pass/fail in `validate`.
"""

from __future__ import annotations

import difflib
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from bot import metrics as M
from bot import samples as S
from bot.cpu_session import as_written
from bot.errors import BadInput
from bot.quant import aimet_engine as A
from bot.quant.aimet_engine import ENGINE as AIMET
from bot.quant.aimet_engine import AIMET_ENCODINGS, AIMET_FLOAT
from bot.records import Check, Failure, FailureKind, StageFailed, StageResult
from bot.stage_options import QuantizeOptions
from bot.stages import _ranges as R
from bot.stages._onnx import cpu_outputs, stage_feeds
from bot.stages.base import Stage, StageContext
from bot.store import write_json
from bot.targets import SOCS

ACTIVATION = {"w8a8": "QUInt8", "w8a16": "QUInt16"}
CALIBRATION = {"minmax": "MinMax", "entropy": "Entropy"}  # percentile and mse: bot.stages._ranges
# weight input → channel axis of each op kind whose weights take per-channel scales on the HTP
# (measured on the simulated HTP v68/v73/v75/v81 at w8a8 and w8a16: tests/test_quant_defaults.py)
PER_CHANNEL_AXIS = {"Conv": lambda w, node: 0, "ConvTranspose": lambda w, node: 1,
                    "Gemm": lambda w, node: 0 if _attr(node, "transB", 0) else 1,
                    "MatMul": lambda w, node: len(w.dims) - 1}
SHAPE_ONLY = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity"}
HOST_OUTPUTS = "host_outputs.npz"  # the CPU QDQ simulation's outputs on the validation samples
BOUNDED_LEVELS_MIN = 16  # a Softmax output using fewer of its 255 8-bit steps than this gets 16 bits


@dataclass(frozen=True)
class QuantSettings:
    """What one quantization run is asked for, whatever engine makes the QDQ graph."""

    precision: str  # w8a8 | w8a16
    per_channel: bool = True
    calibrate_method: str = "minmax"
    tensor_types: dict[str, str] = field(default_factory=dict)  # tensor → onnxruntime QuantType name
    float_tensors: tuple[str, ...] = ()  # tensors left float: their producers run in fp16 on the HTP
    min_real_range: float | None = None
    weight_type: str = "QUInt8"
    per_tensor_weights: tuple[str, ...] = ()  # weights whose per-axis scale onnxruntime refuses

    @property
    def technique(self) -> str:
        """A short label of the choices, for the report's precision × technique table."""
        parts = [self.precision, "per-channel" if self.per_channel else "per-tensor", self.calibrate_method]
        if self.tensor_types:
            parts.append(f"{len(self.tensor_types)} tensor(s) 16-bit")
        if self.float_tensors:
            parts.append(f"{len(self.float_tensors)} tensor(s) fp16")
        if self.weight_type != "QUInt8":
            parts.append(self.weight_type)
        return " · ".join(parts)


class QuantizeStage(Stage):
    name = "quantize"
    depends_on = ("target", "calibration", "quantization")
    Options = QuantizeOptions

    def run(self, ctx: StageContext, work: Path) -> StageResult:
        import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
        src = ctx.artifact("optimize", "onnx")
        out = work / "model.onnx"
        opts = ctx.opts(QuantizeOptions)
        precision = opts.precision_for(ctx.spec)
        if precision == "fp16":
            shutil.copyfile(src, out)
            return self.result({"onnx": "model.onnx"}, [Check("float graph kept for fp16 on HTP", True)],
                               {"precision": "fp16", "technique": "fp16"})
        calib = stage_feeds(ctx, "calibration")
        settings, chosen = settings_for(ctx.spec, opts, precision, src, calib)
        try:
            if opts.engine == AIMET:  # bot.quant.aimet_engine: AIMET's HTP simulation and techniques
                aimet = _aimet_quantize(src, out, work, calib, precision, ctx.spec.target.soc, opts)
            else:
                quantize_with_ort(src, out, work, calib, settings)
        except BadInput:
            raise
        except Exception as e:
            raise StageFailed(Failure(self.name, FailureKind.TOOL_ERROR, f"quantization failed: {type(e).__name__}: {e}",
                                      log=str(e)[-2000:])) from None
        corrected = None
        if opts.bias_correction != "off":  # bot.quant.bias_correction: against the weights the QDQ graph holds
            corrected = _correct_biases(out, work / AIMET_FLOAT if opts.engine == AIMET else src, calib,
                                        opts.bias_correction)
        from bot.graph.host_part import carry_host_part  # deferred: onnx_ir and onnxscript (~1 s)

        carry_host_part(src, out)
        deployed = onnx.load(str(out))
        encodings = encodings_of(deployed)
        saturated = saturated_biases(deployed)

        write_json(work / "encodings.json", encodings)
        feeds = stage_feeds(ctx, "samples")
        golden = S.load(ctx.artifact("load", "golden"))
        try:  # onnxruntime checks the QDQ graph it was just given (e.g. per-axis scale shapes) here
            outs = cpu_outputs(out, feeds)
        except Exception as e:  # noqa: BLE001 — a structured failure the repair loop can classify
            raise StageFailed(qdq_check_failure(self.name, deployed, e)) from None
        sim = {name: round(M.cosine(M.concat([g[name] for g in golden]), M.concat([o[j] for o in outs])), 6)
               for j, name in enumerate(golden[0])}
        # kept so the repair planner can judge a task metric on the CPU simulation (bot.repair.score)
        S.save(work / HOST_OUTPUTS, [dict(zip(golden[0], o)) for o in outs])
        bits16 = sum(1 for e in encodings.values() if e["bits"] == 16)
        per_channel = sum(1 for n in per_channel_weights(deployed).values() if n > 1)
        checks = [Check("QDQ graph written and runs on the CPU", True),
                  Check("no bias saturates int32", not saturated, [b["bias"] for b in saturated] or "none")]
        metrics = {"precision": precision, "technique": settings.technique, "per_channel": settings.per_channel,
                   "calibrate_method": settings.calibrate_method, "calibration_samples": len(calib),
                   "quantized_tensors": len(encodings), "int16_tensors": bits16, "per_channel_tensors": per_channel,
                   "overrides": sorted(opts.overrides), "chosen_overrides": chosen, "host_cosine": sim}
        artifacts = {"onnx": "model.onnx", "encodings": "encodings.json", "host_outputs": HOST_OUTPUTS}
        if corrected is not None:
            metrics["bias_correction"] = corrected
        if opts.engine == AIMET:
            metrics["aimet"] = {"config": aimet.config, "techniques": list(aimet.techniques), "seconds": aimet.seconds,
                                "fused_quantizers_dropped": aimet.fused_quantizers_dropped,
                                **({"notes": aimet.notes} if aimet.notes else {})}
            metrics["technique"] = "aimet " + ("+".join(aimet.techniques) or "quantsim")
            artifacts |= {"aimet_encodings": AIMET_ENCODINGS, "aimet_float": AIMET_FLOAT}
        if saturated:
            raise StageFailed(Failure(self.name, FailureKind.ACCURACY,
                                      f"{len(saturated)} bias tensor(s) saturate int32 (first: {saturated[0]['bias']}): "
                                      "their layers' outputs shift by the clipped amount",
                                      details={"saturated_biases": saturated}), checks, metrics)
        return self.result(artifacts, checks, metrics)


def settings_for(spec, opts: QuantizeOptions, precision: str, src: Path, calib) -> tuple[QuantSettings, dict[str, str]]:
    """The definition's quantization section, the repairs' options on top, and the 16-bit outputs
    the bot chooses itself (returned with the reason, for the manifest)."""
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
    q = spec.quantization
    model = onnx.load(str(src), load_external_data=False)
    _check_override_names(q.overrides, model)
    types = {t: "QUInt16" for t, p in q.overrides.items() if p == "int16"}
    floats = tuple(t for t, p in q.overrides.items() if p == "fp16")
    floats += tuple(t for t in opts.float_tensors if t not in floats)  # a repair's fp16 nodes
    chosen: dict[str, str] = {}
    if precision == "w8a8" and q.bounded_outputs_16bit and SOCS[spec.target.soc].int16:
        for t, why in bounded_outputs(model, src, calib).items():
            if t not in q.overrides:
                types[t], chosen[t] = "QUInt16", why
    types |= {t: o.quant_type for t, o in opts.overrides.items()}
    return QuantSettings(precision=precision, per_channel=opts.per_channel_for(spec),
                         calibrate_method=opts.calibrate_method_for(spec), tensor_types=types,
                         float_tensors=floats, min_real_range=opts.min_real_range, weight_type=opts.weight_type,
                         per_tensor_weights=tuple(opts.per_tensor_weights)), chosen


def _check_override_names(overrides: dict[str, str], model: onnx.ModelProto) -> None:
    if not overrides:
        return
    names = _tensor_names(model)
    unknown = [t for t in overrides if t not in names]
    if unknown:
        near = {t: difflib.get_close_matches(t, names, n=3, cutoff=0.4) for t in unknown}
        listing = ", ".join(sorted(names)[:40]) + (f", … ({len(names)} in all)" if len(names) > 40 else "")
        hints = "; ".join(f"{t!r}: did you mean {', '.join(map(repr, m))}?" for t, m in near.items() if m)
        raise BadInput(f"no tensor named {', '.join(map(repr, unknown))} in the optimized graph "
                       f"(optimize/model.onnx); its tensors: {listing}", where="quantization.overrides",
                       hint=hints or None)


def _tensor_names(model: onnx.ModelProto) -> list[str]:
    g = model.graph
    names = {i.name for i in g.input} | {i.name for i in g.initializer}
    names |= {o for n in g.node for o in n.output if o}
    return sorted(names)


def _attr(node, name: str, default):
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _output_producer(model: onnx.ModelProto, output: str):
    """The node that computes a graph output, looking through shape-only ops (Reshape, Flatten …)."""
    made_by = {o: n for n in model.graph.node for o in n.output}
    node = made_by.get(output)
    while node is not None and node.op_type in SHAPE_ONLY:
        node = made_by.get(node.input[0])
    return node


def bounded_outputs(model: onnx.ModelProto, src: Path, calib) -> dict[str, str]:
    """Graph outputs computed by a Softmax whose calibrated values use fewer than
    BOUNDED_LEVELS_MIN of its 8-bit steps. onnxruntime fixes a quantized Softmax output to
    [0, 1] (scale 1/255), so a 1000-way Softmax whose probabilities sit near 1e-3 (an untrained or
    uncertain classifier) rounds to all zeros at 8 bits; at 16 bits the step is 1/65535."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    softmax_outputs = [o.name for o in model.graph.output
                       if (n := _output_producer(model, o.name)) is not None and n.op_type == "Softmax"]
    if not softmax_outputs or not calib:
        return {}
    import onnxruntime as ort  # deferred: a slow import; only running a graph needs it

    sess = ort.InferenceSession(str(src), as_written(), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in sess.get_inputs()}
    peak = dict.fromkeys(softmax_outputs, 0.0)
    for feed in calib:
        for name, value in zip(softmax_outputs, sess.run(softmax_outputs, {k: v for k, v in feed.items() if k in wanted})):
            peak[name] = max(peak[name], float(np.max(value)))
    return {name: f"trailing Softmax: calibrated maximum {p:.3g} is {p * 255:.2f} of its 8-bit steps (1/255)"
            for name, p in peak.items() if p * 255 < BOUNDED_LEVELS_MIN}


def per_channel_overrides(model: onnx.ModelProto, weight_type: str) -> dict[str, list[dict]]:
    """Per-channel weight scales, named tensor by tensor for the op kinds in PER_CHANNEL_AXIS
    (onnxruntime's global `per_channel` covers Conv, ConvTranspose and Gemm; its QNN config
    turns MatMul per-tensor, though the HTP runs per-channel MatMul weights). A weight with one
    channel stays per-tensor: onnxruntime refuses a per-axis scale of size one."""
    from onnxruntime.quantization import QuantType  # deferred: a slow import; only running a graph needs it

    inits = {i.name: i for i in model.graph.initializer}
    axes: dict[str, set[int]] = {}
    for node in model.graph.node:
        axis_of = PER_CHANNEL_AXIS.get(node.op_type)
        if axis_of is None or len(node.input) < 2 or node.input[1] not in inits:
            continue
        w = inits[node.input[1]]
        if len(w.dims) >= 2:
            axes.setdefault(w.name, set()).add(axis_of(w, node))
    # a weight shared by nodes that want different axes stays per-tensor
    return {name: [{"axis": a, "quant_type": getattr(QuantType, weight_type)}]
            for name, (a, *more) in ((n, sorted(s)) for n, s in axes.items())
            if not more and inits[name].dims[a] > 1}


def quantize_with_ort(src: Path, out: Path, work: Path, calib, settings: QuantSettings) -> None:
    """The onnxruntime engine: QNN preprocessing, the QNN QDQ config, static quantization.
    Other engines take the same arguments and write the same thing: a QDQ model at `out`."""
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantType, quantize  # deferred: a slow import; only running a graph needs it
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config, qnn_preprocess_model  # deferred: a slow import; only running a graph needs it

    logging.getLogger().setLevel(logging.ERROR)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            return next(self.it, None)

    pre = work / "preprocessed.onnx"
    src = _without_metadata(src, work / "no-metadata.onnx")
    model_in = pre if qnn_preprocess_model(str(src), str(pre), fuse_layernorm=True) else src
    model = onnx.load(str(model_in), load_external_data=False)
    if unshare_biases(model) + flatten_gemm_biases(model):  # before onnxruntime quantizes the biases
        model_in, full = work / "unshared-biases.onnx", onnx.load(str(model_in))
        unshare_biases(full)
        flatten_gemm_biases(full)
        onnx.save(full, str(model_in))
        model = onnx.load(str(model_in), load_external_data=False)
    init_overrides: dict[str, list[dict]] = {}
    if settings.per_channel:
        init_overrides |= {w: o for w, o in per_channel_overrides(model, settings.weight_type).items()
                           if w not in settings.per_tensor_weights}
    for t, qtype in settings.tensor_types.items():
        init_overrides[t] = [{**(init_overrides.get(t) or [{}])[0], "quant_type": getattr(QuantType, qtype)}]
    if settings.calibrate_method in R.METHODS:  # our ranges, handed to onnxruntime as rmin/rmax overrides
        default_bits = 16 if settings.precision == "w8a16" else 8
        default_type = getattr(QuantType, ACTIVATION[settings.precision])
        bits = {t: 16 for t, q in settings.tensor_types.items() if q.endswith("16")}
        ranges = R.activation_ranges(model_in, calib, settings.calibrate_method, bits, default_bits)
        widened = sixteen_bit_neighbours(model, {t for t, q in settings.tensor_types.items()
                                                 if getattr(QuantType, q) != default_type})
        for t, r in R.range_overrides(model, ranges).items():
            if t in widened:  # onnxruntime makes it a 16-bit output itself, calibrated (min-max = mse at 16 bits)
                continue
            entry = {**(init_overrides.get(t) or [{}])[0], **r}
            entry.setdefault("quant_type", default_type)  # a range-only entry reads as "no type" to the fixer
            init_overrides[t] = [entry]
    made_by = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    exclude = sorted({n.name for t in settings.float_tensors
                      for n in ([made_by[t]] if t in made_by else consumers.get(t, []))})
    cfg = get_qnn_qdq_config(str(model_in), Reader(),
                             calibrate_method=getattr(CalibrationMethod,
                                                      CALIBRATION.get(settings.calibrate_method, "MinMax")),
                             activation_type=getattr(QuantType, ACTIVATION[settings.precision]),
                             weight_type=getattr(QuantType, settings.weight_type),
                             init_overrides=init_overrides or None, nodes_to_exclude=exclude or None)
    # not CalibMaxIntermediateOutputs: onnxruntime 1.32 drops each full batch without computing its
    # ranges (a multiple of the batch size fails with "No data is collected"); MinMax keeps only
    # per-tensor reductions in memory anyway
    if settings.min_real_range is not None:  # the QNN config widens every range to ≥ 1e-4 by default
        cfg.extra_options["MinimumRealRange"] = float(settings.min_real_range)
    cwd = os.getcwd()
    model_in, out = Path(model_in).resolve(), Path(out).resolve()  # a relative work directory must survive the chdir
    try:  # the calibrator writes augmented models into the working directory
        os.chdir(work)
        quantize(str(model_in), str(out), cfg)
    finally:
        os.chdir(cwd)
    for tmp in (pre, work / "no-metadata.onnx", work / "unshared-biases.onnx"):
        tmp.unlink(missing_ok=True)


def sixteen_bit_neighbours(model: onnx.ModelProto, sixteen: set[str]) -> set[str]:
    """Tensors onnxruntime's QNN mixed-precision fixer turns into 16-bit *outputs* because they
    are written by a node that reads or writes one of `sixteen` (it keeps each such node's inputs
    and outputs in one type, converting at the edges). An override entry of our own on one of
    them (a percentile / mse range, which carries no type, so 8-bit to the fixer) is refused with
    "Desired producer quant_type for … doesn't match existing type" — basic-pitch's int16-localized
    candidate failed so — so those tensors are left to onnxruntime."""
    inits = {i.name for i in model.graph.initializer}
    out: set[str] = set()
    for node in model.graph.node:
        if set(node.output) & sixteen or (set(node.input) - inits) & sixteen:
            out.update(o for o in node.output if o)
    return out - sixteen


BIAS_OPS = ("Conv", "ConvTranspose", "Gemm")


def unshare_biases(model: onnx.ModelProto) -> int:
    """Give every op its own copy of a bias initializer that several ops read; returns the copies made.

    A bias's int32 scale is its op's input scale × weight scale, so onnxruntime's QDQ quantizer copies a
    shared bias per op, naming the copy `<bias><n>` after checking only initializer names. tf2onnx names
    a Conv's output `<bias>2` (basic-pitch: bias `…conv1d_25`, output `…conv1d_252`), so the copy's
    DequantizeLinear took over that activation and the graph failed onnxruntime's shape check
    ("Invalid attribute perm {0, 2, 3, 1}, input shape = {36}"). Copies made here carry names no
    tensor has, so the quantizer never makes its own."""
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph

    inits = {i.name: i for i in model.graph.initializer}
    readers: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    taken = set(_tensor_names(model)) | set(inits)
    made = 0
    seen: set[str] = set()
    for node in model.graph.node:
        if node.op_type not in BIAS_OPS or len(node.input) < 3 or node.input[2] not in inits:
            continue
        bias = node.input[2]
        if readers[bias] < 2 or bias not in seen:
            seen.add(bias)
            continue
        k = 0
        while f"{bias}_unshared{k}" in taken:
            k += 1
        copy = onnx.TensorProto()
        copy.CopyFrom(inits[bias])
        copy.name = f"{bias}_unshared{k}"
        taken.add(copy.name)
        model.graph.initializer.append(copy)
        node.input[2] = copy.name
        made += 1
    return made


def flatten_gemm_biases(model: onnx.ModelProto) -> int:
    """Reshape a Gemm's [1, N] bias initializer to [N]; returns how many were reshaped.

    onnxruntime quantizes a bias per channel on axis 0 whenever its weight is per channel, so a
    [1, N] bias (tf2onnx / jax2tf write them: magika's Dense layers) gets N scales on an axis of
    size 1, which onnxruntime's DequantizeLinear refuses ("For per axis quantization, scale must be
    1D tensor with size 1") once constant folding is off, as in localization. Gemm broadcasts C
    to (M, N), so [N] computes the same. A bias other ops read too keeps its shape; Gemm gets a copy."""
    from onnx import numpy_helper  # deferred: ~0.4 s to import; a fully cached run opens no graph

    inits = {i.name: i for i in model.graph.initializer}
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    taken = set(_tensor_names(model)) | set(inits)
    done = 0
    for node in model.graph.node:
        if node.op_type != "Gemm" or len(node.input) < 3 or node.input[2] not in inits:
            continue
        bias = inits[node.input[2]]
        if len(bias.dims) != 2 or bias.dims[0] != 1:
            continue
        flat = numpy_helper.from_array(numpy_helper.to_array(bias).reshape(-1), bias.name)
        if all(r.op_type == "Gemm" for r in readers[bias.name]):
            bias.CopyFrom(flat)
            # a recorded [1, N] shape for it (tf2onnx writes value_info for initializers) would now
            # contradict shape inference ("Inferred shape and existing shape differ in rank")
            for infos in (model.graph.value_info, model.graph.input):
                for v in [v for v in infos if v.name == bias.name]:
                    infos.remove(v)
        else:
            k = 0
            while f"{bias.name}_flat{k}" in taken:
                k += 1
            flat.name = f"{bias.name}_flat{k}"
            taken.add(flat.name)
            model.graph.initializer.append(flat)
            inits[flat.name] = flat
            node.input[2] = flat.name
        done += 1
    return done


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


def _correct_biases(out: Path, float_model: Path, calib, how: str) -> dict:
    """Bias correction on the written QDQ graph; `float_model` holds the weights it rounded (AIMET's own
    float export after CLE / AdaRound, else the optimize stage's graph)."""
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph

    from bot.quant.bias_correction import correct_biases, correct_biases_empirically  # deferred: imports onnx

    t = time.perf_counter()
    model = onnx.load(str(out))
    done = correct_biases(float_model, model, calib)
    empirical = correct_biases_empirically(float_model, model, calib) if how == "empirical" else None
    onnx.save(model, str(out))
    return {"how": how, "corrected": done.corrected, "skipped": done.skipped,
            "largest_shift_steps": done.largest_shift_steps,
            **({"empirically_corrected": empirical} if empirical is not None else {}),
            "seconds": round(time.perf_counter() - t, 2)}


def _aimet_quantize(src: Path, out: Path, work: Path, calib, precision: str, soc: str, opts: QuantizeOptions):
    why = A.unavailable()
    if why:
        raise BadInput(f"quantize.engine: aimet cannot run: {why}")
    return A.quantize(src, out, work, list(calib), precision, SOCS[soc].htp_arch,
                      A.AimetOptions.checked(opts.techniques, opts.adaround_iterations, opts.seqmse_candidates))


def _without_metadata(src: Path, dst: Path) -> Path:
    """onnxruntime 1.32's `qnn_preprocess_model` fails on any metadata_props (it dict-updates a
    protobuf list), so the graph is quantized without them; `carry_host_part` puts ours back."""
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
    m = onnx.load(str(src), load_external_data=False)
    if not len(m.metadata_props):
        return src
    m = onnx.load(str(src))
    del m.metadata_props[:]
    onnx.save(m, str(dst))
    return dst


def saturated_biases(model: onnx.ModelProto) -> list[dict]:
    """int32 biases with an element at the type's limit: clipped when quantized, not rounded."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
    from onnx import numpy_helper  # deferred: ~0.4 s to import; a fully cached run opens no graph
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


def per_channel_weights(model: onnx.ModelProto) -> dict[str, int]:
    """Quantized weights (DequantizeLinear of an initializer) → how many scales each carries."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    inits = {i.name: i for i in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits and node.input[1] in inits:
            out[node.input[0]] = int(np.prod(inits[node.input[1]].dims or [1]))
    return out


def encodings_of(model: onnx.ModelProto) -> dict[str, dict]:
    """Scale, zero-point and bit width of every quantized tensor (from its QuantizeLinear)."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    from onnx import numpy_helper  # deferred: ~0.4 s to import; a fully cached run opens no graph
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
