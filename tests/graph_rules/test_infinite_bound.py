"""infinite-bound: magika's written-out softmax `exp(x - max(reduce_max(x), -inf))` — the -inf bound
computes nothing but quantizes to an infinite scale (NaN downstream). The rule drops it exactly, and
the optimize stage applies it to every graph, so the quantized softmax agrees with FP32."""

from __future__ import annotations

import numpy as np
from onnx import helper as h

from bot.graph.rules import apply_rewrites
from bot.stages.quantize import QuantSettings, quantize_with_ort
from tests.graph_rules._helpers import F, const, model, run_cpu, same_numerics


def _softmax_with_bound(op="Max", bound=-np.inf):
    nodes = [h.make_node("ReduceMax", ["x"], ["m"], axes=[1], keepdims=1),
             h.make_node(op, ["m", "bound"], ["mb"]),
             h.make_node("Sub", ["x", "mb"], ["d"]), h.make_node("Exp", ["d"], ["e"]),
             h.make_node("ReduceSum", ["e", "axes"], ["s"], keepdims=1), h.make_node("Div", ["e", "s"], ["y"])]
    return model(nodes, [("x", F, [1, 8])], [("y", F)],
                 [const("bound", np.array(bound, np.float32)), const("axes", np.array([1], np.int64))], opset=17)


def test_a_max_against_minus_infinity_is_dropped_with_the_same_numbers():
    m = _softmax_with_bound()
    x = {"x": np.random.RandomState(0).randn(1, 8).astype(np.float32) * 3}
    out, counts = apply_rewrites(m, ["infinite-bound"])
    assert counts == {"infinite-bound": 1} and "Max" not in [n.op_type for n in out.graph.node]
    assert same_numerics(_softmax_with_bound(), out, x)


def test_a_finite_bound_and_min_against_minus_infinity_are_kept():
    assert apply_rewrites(_softmax_with_bound(bound=0.0), ["infinite-bound"])[1] == {"infinite-bound": 0}
    assert apply_rewrites(_softmax_with_bound("Min", -np.inf), ["infinite-bound"])[1] == {"infinite-bound": 0}
    assert apply_rewrites(_softmax_with_bound("Min", np.inf), ["infinite-bound"])[1] == {"infinite-bound": 1}


def test_the_quantized_softmax_agrees_once_the_bound_is_dropped(tmp_path):
    import onnx

    rng = np.random.RandomState(1)
    calib = [{"x": rng.randn(1, 8).astype(np.float32) * 3} for _ in range(8)]
    cos = {}
    for name, m in (("kept", _softmax_with_bound()), ("dropped", apply_rewrites(_softmax_with_bound(), ["infinite-bound"])[0])):
        src, out = tmp_path / f"{name}.onnx", tmp_path / f"{name}-q.onnx"
        onnx.save(m, str(src))
        quantize_with_ort(src, out, tmp_path, calib, QuantSettings(precision="w8a16"))
        ref = np.concatenate([run_cpu(m, c)[0].ravel() for c in calib])
        got = np.concatenate([run_cpu(onnx.load(str(out)), c)[0].ravel() for c in calib])
        cos[name] = float(ref @ got / (np.linalg.norm(ref) * np.linalg.norm(got))) if np.all(np.isfinite(got)) else float("nan")
    assert cos["dropped"] > 0.999, cos
    assert not cos["kept"] > 0.99, cos  # the bound itself is what breaks it


def test_the_optimize_stage_drops_the_bound_without_being_asked(tmp_path):
    import json

    import onnx
    import yaml

    from bot import backends
    from bot.pipeline import Pipeline
    from bot.spec import load_spec

    folder = tmp_path / "m"
    folder.mkdir()
    onnx.save(_softmax_with_bound(), str(folder / "model.onnx"))
    (folder / "aipc.yaml").write_text(yaml.safe_dump({"name": "sm", "onnx": "model.onnx", "outputs": ["y"],
                                                      "inputs": [{"name": "x", "shape": [1, 8]}],
                                                      "validation": {"samples": 1}}))
    spec, folder = load_spec(folder)
    out = Pipeline(spec, folder, tmp_path / "o", backends.for_target(spec.target),
                   workflow=["load", "export", "optimize"]).run()
    assert out.passed, out.failure
    opt = json.loads((tmp_path / "o" / "optimize" / "result.json").read_text())
    assert opt["metrics"]["rewrites"] == {"infinite-bound": 1}
    assert "Max" not in [n.op_type for n in onnx.load(str(tmp_path / "o" / "optimize" / "model.onnx")).graph.node]
