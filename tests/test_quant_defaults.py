"""Quantization defaults for trained weights: per-channel weights on every op kind the HTP takes
them for, the `quantization` section of the definition (old spellings kept), tensors pinned to
int16 / fp16, and a trailing Softmax too fine for 8 bits kept in 16 bits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from bot import backends
from bot.backends.ort_qnn import _session, session_options
from bot.errors import BadInput
from bot.pipeline import Pipeline
from bot.spec import load_spec
from bot.spec.schema import Spec, TargetSpec
from bot.stages.quantize import QuantSettings, per_channel_overrides, per_channel_weights, quantize_with_ort
from tests.conftest import write_model


class _Op(torch.nn.Module):
    """One weight-carrying op whose output channels span three decades of scale, as trained
    layers' do: per-tensor scales lose the small channels, per-channel ones keep them."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.m = {"Conv": torch.nn.Conv2d(8, 16, 3), "Depthwise": torch.nn.Conv2d(8, 8, 3, groups=8),
                  "ConvTranspose": torch.nn.ConvTranspose2d(8, 16, 3, stride=2),
                  "Gemm": torch.nn.Linear(8, 16), "MatMul": torch.nn.Linear(8, 16)}[kind]
        w = self.m.weight
        axis = 1 if kind == "ConvTranspose" else 0
        shape = [1] * w.dim()
        shape[axis] = w.shape[axis]
        with torch.no_grad():
            w.mul_(torch.logspace(-3, 0, w.shape[axis]).reshape(shape))
            self.m.bias.zero_()

    def forward(self, x):
        return self.m(x)


SHAPES = {"Conv": [1, 8, 10, 10], "Depthwise": [1, 8, 10, 10], "ConvTranspose": [1, 8, 5, 5],
          "Gemm": [2, 8], "MatMul": [1, 4, 8]}  # 3-D input: Linear exports as MatMul + Add


def _cos(a, b) -> float:
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _quantized(kind: str, tmp: Path, per_channel: bool, precision: str):
    torch.manual_seed(0)
    m = _Op(kind).eval()
    x = torch.randn(*SHAPES[kind])
    src = tmp / f"{kind}.onnx"
    torch.onnx.export(m, (x,), src, input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
    ops = {n.op_type for n in onnx.load(str(src)).graph.node}
    assert (kind if kind != "Depthwise" else "Conv") in ops
    rng = np.random.RandomState(0)
    calib = [{"x": rng.randn(*SHAPES[kind]).astype(np.float32)} for _ in range(4)]
    out = tmp / f"{kind}-{per_channel}-{precision}.onnx"
    quantize_with_ort(src, out, tmp, calib, QuantSettings(precision=precision, per_channel=per_channel))
    ref = m(torch.from_numpy(calib[0]["x"])).detach().numpy()
    return out, calib[0], ref


@pytest.mark.htp
@pytest.mark.parametrize("precision", ["w8a8", "w8a16"])
@pytest.mark.parametrize("kind", list(SHAPES))
def test_per_channel_weights_run_on_the_htp_for_each_op_kind(kind, precision, tmp_path):
    per_tensor, feed, ref = _quantized(kind, tmp_path, False, precision)
    per_channel, _, _ = _quantized(kind, tmp_path, True, precision)
    channels = 8 if kind == "Depthwise" else 16
    assert channels in per_channel_weights(onnx.load(str(per_channel))).values(), "no weight got a scale per channel"
    assert set(per_channel_weights(onnx.load(str(per_tensor))).values()) == {1}
    target = TargetSpec(soc="SM8650")
    # CPU fallback disabled: a per-channel weight the HTP refused would raise here
    got_pc = _session(str(per_channel), session_options(target)).run(None, feed)[0]
    got_pt = _session(str(per_tensor), session_options(target)).run(None, feed)[0]
    assert _cos(got_pc, ref) >= 0.999
    assert _cos(got_pc, ref) > _cos(got_pt, ref), "per-channel should keep the small channels per-tensor loses"


def test_per_channel_skips_single_channel_and_shared_conflicting_weights():
    from onnx import TensorProto, helper

    w1 = numpy_helper.from_array(np.ones((1, 3, 3, 3), np.float32), "w1")  # one output channel
    w2 = numpy_helper.from_array(np.ones((4, 4), np.float32), "w2")  # MatMul B and Gemm B (transB): axes differ
    w3 = numpy_helper.from_array(np.ones((4, 6), np.float32), "w3")
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["c"]),
         helper.make_node("MatMul", ["v", "w2"], ["m"]),
         helper.make_node("Gemm", ["v", "w2"], ["g"], transB=1),
         helper.make_node("MatMul", ["v", "w3"], ["m3"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
              helper.make_tensor_value_info("v", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("c", "m", "g", "m3")],
        initializer=[w1, w2, w3])
    ov = per_channel_overrides(helper.make_model(g), "QUInt8")
    assert list(ov) == ["w3"] and ov["w3"][0]["axis"] == 1


def test_quantization_section_defaults_and_old_spellings(tiny_model, tmp_path):
    spec, _ = load_spec(tiny_model)
    assert spec.per_channel is True and spec.calibrate_method == "minmax"
    old = Spec.model_validate({**spec.model_dump(), "target": {"per_channel": False},
                               "calibration": {"method": "percentile"}})
    assert old.per_channel is False and old.calibrate_method == "percentile"
    new = Spec.model_validate({**spec.model_dump(), "quantization": {"per_channel": False, "calibrate_method": "entropy",
                                                                     "overrides": {"y": "int16"}}})
    assert (new.per_channel, new.calibrate_method, new.quantization.overrides) == (False, "entropy", {"y": "int16"})
    folder = write_model(tmp_path / "clash", {"target": {"per_channel": False}, "quantization": {"per_channel": True}})
    with pytest.raises(BadInput, match="target.per_channel .* and quantization.per_channel"):
        load_spec(folder)
    folder = write_model(tmp_path / "bad", {"quantization": {"overrides": {"y": "int4"}}})
    with pytest.raises(BadInput, match=r"quantization\.overrides\.y"):
        load_spec(folder)


def _output_encoding(dep: Path, output: str) -> dict | None:
    """The encoding of a graph output (onnxruntime renames the tensor its QuantizeLinear reads)."""
    enc = json.loads((dep / "quantize" / "encodings.json").read_text())
    return enc.get(output) or enc.get(f"{output}_QuantizeLinear_Input")


def _run(folder: Path, out: Path):
    spec, folder = load_spec(folder)
    return Pipeline(spec, folder, out, backends.for_target(spec.target)).run()


@pytest.mark.htp
def test_unknown_override_tensor_is_bad_input_that_lists_the_real_names(tmp_path):
    folder = write_model(tmp_path / "m", {"target": {"precision": "w8a8"},
                                          "quantization": {"overrides": {"/c1/Cnv_output_0": "int16"}}})
    with pytest.raises(BadInput) as e:
        _run(folder, tmp_path / "dep")
    msg = str(e.value)
    assert msg.startswith("quantization.overrides:") and "'/c1/Cnv_output_0'" in msg
    assert "/c1/Conv_output_0" in msg  # the real name, listed and suggested


@pytest.mark.htp
def test_overrides_pin_one_tensor_to_int16_and_one_to_fp16_on_the_htp(tmp_path):
    folder = write_model(tmp_path / "m", {"target": {"precision": "w8a8"},
                                          "quantization": {"overrides": {"/Relu_output_0": "int16",
                                                                         "y": "fp16"}}})
    outcome = _run(folder, tmp_path / "dep")
    assert outcome.passed, outcome.failure
    enc = json.loads((tmp_path / "dep" / "quantize" / "encodings.json").read_text())
    assert enc["/Relu_output_0"]["bits"] == 16
    assert _output_encoding(tmp_path / "dep", "y") is None  # left float: the last Conv runs in fp16 on the HTP
    q = onnx.load(str(tmp_path / "dep" / "quantize" / "model.onnx"))
    last = next(n for n in q.graph.node if "y" in n.output)
    assert last.op_type == "Conv"  # float Conv fed by DequantizeLinear, no QDQ after it
    others = [e["bits"] for t, e in enc.items() if t not in ("/Relu_output_0",) and not isinstance(e["scale"], list)]
    assert 8 in others


CLASSIFIER = '''
import torch
import torch.nn as nn


class Classifier(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, stride=2)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        h = torch.relu(self.conv(x)).mean((2, 3))
        return torch.softmax(self.fc(h), -1)


def build():
    torch.manual_seed(0)
    return Classifier(CLASSES).eval()
'''


@pytest.mark.htp
def test_a_1000_way_softmax_below_one_8bit_step_deploys_at_w8a8_with_a_16bit_output(tmp_path):
    spec = {"inputs": [{"name": "x", "shape": [1, 3, 32, 32], "range": [0, 1]}], "target": {"precision": "w8a8"},
            "limits": {"repair_attempts": 0}, "validation": {"samples": 2, "outputs": {"y": {"topk": 5}}}}
    folder = write_model(tmp_path / "c1000", spec, code=CLASSIFIER.replace("CLASSES", "1000"))
    outcome = _run(folder, tmp_path / "dep")
    assert outcome.passed, outcome.failure
    q = outcome.result("quantize").metrics
    assert "y" in q["chosen_overrides"] and "trailing Softmax" in q["chosen_overrides"]["y"]
    assert _output_encoding(tmp_path / "dep", "y")["bits"] == 16
    assert outcome.result("validate").metrics["outputs"]["y"]["cosine"] >= 0.99
    # the same classifier with the rule off: 8-bit output, every probability rounds to zero
    off = write_model(tmp_path / "off", {**spec, "quantization": {"bounded_outputs_16bit": False}},
                      code=CLASSIFIER.replace("CLASSES", "1000"))
    lost = _run(off, tmp_path / "dep-off")
    assert not lost.passed
    assert _output_encoding(tmp_path / "dep-off", "y")["bits"] == 8


def test_a_10_way_softmax_stays_8bit(tmp_path):
    """Where 8 bits resolve the probabilities (10 classes: about 0.1 each) the rule stays out."""
    from bot.stages.quantize import bounded_outputs

    torch.manual_seed(0)
    ns: dict = {}
    exec(CLASSIFIER.replace("CLASSES", "10"), ns)  # noqa: S102 — the test's own model code
    m = ns["build"]()
    src = tmp_path / "c10.onnx"
    torch.onnx.export(m, (torch.rand(1, 3, 32, 32),), src, input_names=["x"], output_names=["y"], dynamo=False)
    calib = [{"x": np.random.RandomState(i).rand(1, 3, 32, 32).astype(np.float32)} for i in range(4)]
    assert bounded_outputs(onnx.load(str(src)), src, calib) == {}
    big = tmp_path / "c1000.onnx"
    ns2: dict = {}
    exec(CLASSIFIER.replace("CLASSES", "1000"), ns2)  # noqa: S102
    torch.onnx.export(ns2["build"](), (torch.rand(1, 3, 32, 32),), big, input_names=["x"], output_names=["y"],
                      dynamo=False)
    assert list(bounded_outputs(onnx.load(str(big)), big, calib)) == ["y"]


def _graph_file(tmp: Path, fn, n: int = 256) -> Path:
    """A one-input graph computing `fn(x)` in torch, exported to ONNX."""

    class F(torch.nn.Module):
        def forward(self, x):
            return fn(x)

    p = tmp / "g.onnx"
    torch.onnx.export(F(), (torch.zeros(1, n),), p, input_names=["x"], output_names=["y"], dynamo=False)
    return p


def test_percentile_keeps_negative_values_and_survives_a_tiny_range(tmp_path):
    from bot.stages._ranges import activation_ranges

    rng = np.random.RandomState(0)
    src = _graph_file(tmp_path, lambda x: x * 2.0)
    calib = [{"x": rng.randn(1, 256).astype(np.float32)} for _ in range(8)]
    r = activation_ranges(src, calib, "percentile")
    assert r["y"][0] < -4 and r["y"][1] > 4  # a signed tensor keeps its lower half
    # values a few float32 ulps apart: onnxruntime's percentile histogram raises "Too many bins"
    tiny = [{"x": (1.0 + np.arange(256, dtype=np.float32)[None] * 1e-7).astype(np.float32)} for _ in range(2)]
    r = activation_ranges(src, tiny, "percentile")
    assert 1.9 < r["y"][0] <= r["y"][1] < 2.1


def test_mse_clips_a_tail_that_minmax_stretches_for(tmp_path):
    """Laplace-distributed activations, half a million values: the largest sit near 13 scales,
    where 8-bit MSE clipping is optimal near 10 (Banner et al., ACIQ). Min-max spends its 255
    steps on the few extremes; MSE clips them and its error is lower. At 16 bits rounding is
    cheap and MSE keeps more of the range."""
    from bot.stages._ranges import activation_ranges

    rng = np.random.RandomState(0)
    n = 65536
    src = _graph_file(tmp_path, lambda x: x * 2.0, n)
    calib = [{"x": rng.laplace(size=(1, n)).astype(np.float32)} for _ in range(8)]
    mm = activation_ranges(src, calib, "minmax")["y"]
    mse = activation_ranges(src, calib, "mse")["y"]
    assert mm[0] < mse[0] < -10 and 10 < mse[1] < mm[1]  # clipped, in the region theory predicts (×2)

    def err(r):
        vals = 2.0 * np.concatenate([c["x"].ravel() for c in calib]).astype(np.float64)
        a, b = min(r[0], 0), max(r[1], 0)
        step = (b - a) / 255
        q = np.clip(np.round((vals - a) / step), 0, 255) * step + a
        return float(np.mean((vals - q) ** 2))

    assert err(mse) < 0.9 * err(mm)
    wide = activation_ranges(src, calib, "mse", default_bits=16)["y"]
    assert wide[1] - wide[0] > mse[1] - mse[0]


@pytest.mark.htp
def test_the_report_says_what_each_step_bought(tmp_path):
    """Each repair attempt records precision · technique, latency and binary size; the PR body
    shows them as one table, the run as defined first."""
    from bot.deploy import deploy
    from bot.report import pr_body
    from tests.test_repair_loop import OUTLIER

    folder = write_model(tmp_path / "m", {"target": {"precision": "w8a8"}}, code=OUTLIER)
    out = tmp_path / "o"
    assert deploy(folder, out_dir=out).passed
    m = json.loads((out / "manifest.json").read_text())
    first = m["repairs"][0]
    assert first["before"]["technique"].startswith("w8a8 · per-channel · ")
    assert "16-bit" in first["after"]["technique"]  # int16-localized: tensors moved to 16 bits
    assert first["after"]["binary_bytes"] > 0 and first["after"]["latency_ms"] > 0
    body = pr_body(m)
    table = body[body.index("### What each step bought"):].split("\n\n")[1].splitlines()
    assert table[2].startswith("| as defined |  | w8a8 · per-channel") and "❌" in table[2]
    assert table[3].startswith("| 1 | int16-localized (kept) | w8a8 · per-channel") and "✅" in table[3]
    assert "KiB" in table[3]
    assert table[2].count("|") == 9 and "| — |" in table[2]  # no task: in the definition, no task figure


def test_the_step_table_shows_the_task_metric_each_attempt_reached():
    """A user judges an attempt by the task (the string read), not only by cosine."""
    from types import SimpleNamespace

    from bot.records import StageResult
    from bot.repair.figures import step_figures
    from bot.report.view import _step_rows

    task = {"metrics": [{"metric": "string read", "figures": [{"name": "agreement with FP32", "deployed": 0.5},
                                                               {"name": "accuracy vs labels", "deployed": 0.4}]}]}
    val = StageResult("validate", False, metrics={"task": task, "latency_ms_median": 2.0})
    q = StageResult("quantize", True, metrics={"technique": "w8a8 · per-channel", "precision": "w8a8"})
    results = {"validate": val, "quantize": q}
    before = step_figures(SimpleNamespace(result=results.get))
    assert before["task"] == {"string read": 0.5}
    after = {**before, "task": {"string read": 1.0}, "technique": "w8a16 · per-channel", "passed": True}
    rows = _step_rows([{"n": 1, "repair": "w8a16-all", "kept": True, "before": {**before, "passed": False},
                        "after": after}])
    assert [r["task"] for r in rows] == ["string read 0.5", "string read 1"]


@pytest.mark.parametrize("n", [16, 17])
def test_calibration_ranges_see_every_sample(tmp_path, n):
    """onnxruntime's CalibMaxIntermediateOutputs drops full batches unmeasured (16 samples in
    batches of 16: "No data is collected"); every sample's extreme must reach the range."""
    from bot.stages.quantize import encodings_of

    src = _graph_file(tmp_path, lambda x: x * 2.0)
    calib = [{"x": np.full((1, 256), 0.5, np.float32)} for _ in range(n)]
    calib[0]["x"][0, 0] = 50.0  # the extreme sits in the first sample
    out = tmp_path / "q.onnx"
    quantize_with_ort(src, out, tmp_path, calib, QuantSettings("w8a8", calibrate_method="minmax"))
    enc = encodings_of(onnx.load(str(out)))
    y = enc.get("y") or enc.get("y_QuantizeLinear_Input")
    assert y["scale"] == pytest.approx(100.0 / 255, rel=1e-3)
