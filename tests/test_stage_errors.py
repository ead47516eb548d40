"""No stage error escapes as a traceback: it becomes a structured failure the loop can classify,
and the manifest ends in a final status."""

from __future__ import annotations

import json

import numpy as np
import onnx
import yaml
from onnx import helper as h

from bot import backends
from bot.pipeline import Pipeline
from bot.records import FailureKind
from bot.repair.loop import RepairLoop
from bot.repair.state import RepairState
from bot.spec import load_spec
from tests.conftest import write_model

QUANT_STAGES = ["load", "export", "optimize", "quantize"]


def _gemm_with_2d_bias(folder):
    """magika's head in miniature: MatMul + Add of a [1, N] constant, which onnxruntime's QNN
    preprocessing fuses into a Gemm whose bias C is 2-D. Quantized per channel, the bias inherits
    its weight's axis 0 (size 1) and onnxruntime's CPU refuses the DequantizeLinear."""
    rng = np.random.default_rng(0)
    F = onnx.TensorProto.FLOAT
    nodes = [h.make_node("MatMul", ["x", "w"], ["mm"], name="mm"), h.make_node("Add", ["mm", "b"], ["y"], name="add")]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", F, [1, 16])], [h.make_tensor_value_info("y", F, [1, 6])],
                     [onnx.numpy_helper.from_array(rng.normal(0, 0.3, (16, 6)).astype(np.float32), "w"),
                      onnx.numpy_helper.from_array(rng.normal(0, 0.1, (1, 6)).astype(np.float32), "b")])
    folder.mkdir(parents=True)
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), str(folder / "model.onnx"))
    (folder / "aipc.yaml").write_text(yaml.safe_dump({
        "name": "head", "onnx": "model.onnx", "outputs": ["y"], "inputs": [{"name": "x", "shape": [1, 16]}],
        "target": {"precision": "w8a16"}, "calibration": {"samples": 4}, "validation": {"samples": 2}}))
    return folder


def test_a_2d_gemm_bias_is_flattened_so_its_weight_stays_per_channel(tmp_path):
    spec, folder = load_spec(_gemm_with_2d_bias(tmp_path / "m"))
    loop = RepairLoop(spec, folder, tmp_path / "o", backends.for_target(spec.target), workflow=QUANT_STAGES)
    run = loop.run_state(RepairState().with_option("quantize", "per_channel", True))
    assert run.passed, run.failure and run.failure.message
    q = onnx.load(str(run.dirs["quantize"] / "model.onnx"))
    axes = {n.input[0]: next((a.i for a in n.attribute if a.name == "axis"), None)
            for n in q.graph.node if n.op_type == "DequantizeLinear"}
    assert any("w" in t and a is not None for t, a in axes.items()), axes  # the weight kept its scales per channel
    # the localization graph (constant folding off) runs too: the refused scale was only masked by folding
    from bot import samples as S
    from bot.repair.localize import _run

    outs = _run(q, S.load(run.dirs["load"] / "samples.npz"))
    assert outs and outs[0]["y"].shape == (1, 6)


def test_a_refused_per_axis_scale_is_a_classified_failure_and_a_repair_answers_it(tmp_path, monkeypatch):
    # a refused per-axis scale the quantize step does not prevent (here: with the flattening turned off)
    import bot.stages.quantize as Q

    monkeypatch.setattr(Q, "flatten_gemm_biases", lambda model: 0)
    spec, folder = load_spec(_gemm_with_2d_bias(tmp_path / "m"))
    loop = RepairLoop(spec, folder, tmp_path / "o", backends.for_target(spec.target), workflow=QUANT_STAGES)
    first = loop.run_state(RepairState().with_option("quantize", "per_channel", True))
    f = first.failure
    assert f is not None and f.stage == "quantize" and f.kind == FailureKind.TOOL_ERROR
    assert "For per axis quantization" in f.message and f.details["per_axis_weights"], f.details
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert m["status"] == "failed"

    loop.limits = loop.limits.model_copy(update={"repair_attempts": 2})
    state = RepairState().with_option("quantize", "per_channel", True)
    ids = [r.id for r, _ in loop.plan(f, state, first)]
    assert ids[0] == "per-tensor-where-refused", ids
    _, fixed_state = loop.plan(f, state, first)[0]
    fixed = loop.run_state(fixed_state)
    assert fixed.passed, fixed.failure and fixed.failure.message
    per_tensor = fixed_state.options["quantize"]["per_tensor_weights"]
    assert set(per_tensor) == set(f.details["per_axis_weights"])  # only the refused weights lose per-channel


def test_an_unexpected_exception_in_a_stage_ends_as_a_failure_with_a_final_status(tmp_path, monkeypatch):
    from bot.stages.export import ExportStage

    def boom(self, ctx, work):
        raise RuntimeError("something inside a tool went wrong")

    monkeypatch.setattr(ExportStage, "run", boom)
    spec, folder = load_spec(write_model(tmp_path / "m"))
    out = Pipeline(spec, folder, tmp_path / "o", backends.for_target(spec.target), workflow=QUANT_STAGES).run()
    assert out.failure is not None and out.failure.stage == "export" and out.failure.kind == FailureKind.TOOL_ERROR
    assert "RuntimeError: something inside a tool went wrong" in out.failure.message
    assert "Traceback" in out.failure.log  # kept for the report, not printed
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["status"] == "failed"
