"""Quantization-level repairs: what practitioners do when 8-bit activations lose the signal.

Ordered by how often each one is what fixes it in practice (AI Hub's advice: "try w8a16 or mixed
precision"), after the one specific fix for a collapsed output (ranges the QNN quantizer config
widens to 1e-4, which zeroes tensors that are smaller): the layers localization blames in 16 bits, 16-bit activations everywhere, per-channel
weights, a calibration that ignores outliers, and last fp16, which changes the deployed precision.
"""

from __future__ import annotations

from bot.records import FailureKind
from bot.repair.base import Repair
from bot.repair.localize import worst_layers
from bot.stage_options import QuantizeOptions as Q
from bot.targets import SOCS

# share of quantized activations moved to 16 bits, one step per attempt
LOCALIZED_STEPS = (0.05, 0.15, 0.35)


def _precision(state, ctx) -> str:
    return state.opts(Q).precision_for(ctx["spec"])


def _collapsed(failure) -> bool:
    """An output that came back all zeros (cosine undefined): a range was crushed, not rounded."""
    for m in failure.details.get("metrics", {}).values():
        c = m.get("cosine")
        if c is None or (isinstance(c, float) and c != c) or m.get("max_abs") == 0.0:
            return True
    return False


def _signed_weights(failure, state, ctx):
    """A bias that saturates int32 is fixed at its cause: onnxruntime widens a weight's scale so
    input scale × weight scale can hold the bias, but only for signed symmetric weights."""
    if not failure.details.get("saturated_biases") or state.opts(Q).weight_type == "QInt8":
        return None
    return state.with_options(Q, weight_type="QInt8")


def _keep_tiny_ranges(failure, state, ctx):
    if _precision(state, ctx) == "fp16" or state.opts(Q).min_real_range is not None:
        return None
    if not _collapsed(failure):
        return None
    return state.with_options(Q, min_real_range=1e-12)


def _int16_localized(failure, state, ctx):
    if _precision(state, ctx) != "w8a8" or not SOCS[ctx["spec"].target.soc].int16:
        return None
    localization = ctx.get("localize")
    if localization is None:
        return None
    layers = localization()
    if not layers:
        return None

    have = state.opts(Q).content().get("overrides", {})
    for step in LOCALIZED_STEPS:
        chosen = worst_layers(layers, step)
        if any(t not in have for t in chosen):
            return state.with_options(Q, overrides={**have, **{t: {"quant_type": "QUInt16"} for t in chosen}})
    return None


def _w8a16_all(failure, state, ctx):
    if _precision(state, ctx) != "w8a8" or not SOCS[ctx["spec"].target.soc].int16:
        return None
    return state.with_options(Q, precision="w8a16").without(Q, "overrides")


def _per_channel(failure, state, ctx):
    """Per-channel weights are the default (trained weights need them); this answers a definition
    that asked for per-tensor scales (`quantization.per_channel: false`) and then fell short."""
    if state.opts(Q).per_channel_for(ctx["spec"]) or _precision(state, ctx) == "fp16":
        return None
    return state.with_options(Q, per_channel=True)


def _calibration(failure, state, ctx):
    if state.opts(Q).calibrate_method == "percentile" or _precision(state, ctx) == "fp16":
        return None
    return state.with_options(Q, calibrate_method="percentile")


def _fp16(failure, state, ctx):
    if _precision(state, ctx) == "fp16" or not SOCS[ctx["spec"].target.soc].fp16:
        return None
    if failure.stage == "compat":  # compat probes the float graph: fp16 would be refused the same way
        return None
    return state.with_options(Q, precision="fp16").without(Q, "overrides", "per_channel", "calibrate_method")


def _per_tensor_where_refused(failure, state, ctx):
    """onnxruntime refuses a per-axis scale the quantizer wrote (a Gemm bias [1, N] given its
    weight's per-channel axis): those weights, and only those, are quantized per tensor."""
    weights = failure.details.get("per_axis_weights") or []
    have = state.opts(Q).per_tensor_weights
    todo = [w for w in weights if w not in have]
    if not todo:
        return None
    return state.with_options(Q, per_tensor_weights=have + todo)

ACC = (FailureKind.ACCURACY,)
REPAIRS: tuple[Repair, ...] = (
    Repair("signed-weights", "quant", ACC,
           "signed symmetric int8 weights, so the quantizer widens a weight scale until its bias fits int32 "
           "(a saturated bias shifts the layer's output)", _signed_weights, host_visible=True),
    Repair("keep-tiny-ranges", "quant", ACC,
           "keep activation ranges below 1e-4 instead of widening them (they quantize to zero: a "
           "collapsed output)", _keep_tiny_ranges, host_visible=True),
    Repair("int16-localized", "quant", ACC,
           "16-bit activations for the layers failure localization blames (mixed precision)", _int16_localized, host_visible=True),
    Repair("w8a16-all", "quant", ACC, "16-bit activations everywhere (A16W8)", _w8a16_all, host_visible=True),
    Repair("per-channel-weights", "quant", ACC,
           "per-channel weight scales for Conv/ConvTranspose/Gemm/MatMul weights, where the definition asked "
           "for per-tensor", _per_channel, host_visible=True),
    Repair("calibration-percentile", "quant", ACC,
           "percentile calibration (99.999%) so outliers do not stretch the activation ranges", _calibration, host_visible=True),
    Repair("per-tensor-where-refused", "quant", (FailureKind.TOOL_ERROR,),
           "per-tensor scales for the weights whose per-channel axis onnxruntime refuses on a tensor they "
           "feed (\"For per axis quantization, scale must be 1D tensor with size …\")", _per_tensor_where_refused),
    Repair("fp16-precision", "quant", ACC + (FailureKind.OP_REJECTED,),
           "run the float graph in fp16 on the HTP where the SoC supports it", _fp16),
)
