"""How the bot runs a graph on the CPU: one set of onnxruntime session options for every check.

The golden outputs of an `onnx:` definition, the export and optimize parity checks, the quantize
stage's CPU QDQ simulation, bias correction's input means and the planner's weights/activations
attribution all compute graphs the same way, so none of them disagrees with another by an
optimization level."""

from __future__ import annotations


def as_written():
    """CPU session options that compute a graph as written: basic optimizations only. The extended
    level fuses DequantizeLinear → Conv → QuantizeLinear into QLinearConv, whose x86 AVX2 kernel (no
    VNNI) multiplies uint8 activations by int8 weights with saturating 16-bit pair sums; AIMET's or
    signed-weight QDQ graphs then lose accuracy the HTP never loses (deep-sort MobileNetV2, AIMET
    QuantSim: cosine 0.742 fused vs 0.946 as written). An `onnx:` definition's golden outputs use
    the same options, so the export stage's parity check compares like with like (basic-pitch's
    whole graph, a log of a 127 dB power: default vs basic level differ by up to 0.002)."""
    import onnxruntime as ort  # deferred: a slow import, only running a graph needs it

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return so
