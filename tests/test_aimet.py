"""The AIMET engine and its repairs.

The first half runs everywhere (CI does not install the `[aimet]` extra): encodings → SDK
overrides on handmade AIMET files, the HTP config choice per arch, the options' validation, and
the repairs' state changes and their absence (with the reason recorded) when aimet-onnx is missing.
The second half runs only where aimet-onnx imports: a small convnet trained in the test for a few
seconds, quantized by AIMET and deployed through the real HTP.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from bot.errors import BadInput
from bot.quant import aimet_engine as A
from bot.records import Failure, FailureKind
from bot.repair.catalogue import all_repairs
from bot.repair.state import RepairState

HAVE_AIMET = importlib.util.find_spec("aimet_onnx") is not None


# ── without aimet ─────────────────────────────────────────────────────────────────────────────
def test_overrides_from_aimet_1_0_0_per_tensor_and_per_channel():
    aimet = {"version": "1.0.0",
             "activation_encodings": [{"name": "relu_out", "dtype": "INT", "enc_type": "PER_TENSOR", "bw": 8,
                                       "is_sym": False, "scale": [0.02], "offset": [-10]},
                                      {"name": "gone", "dtype": "INT", "enc_type": "PER_TENSOR", "bw": 8,
                                       "is_sym": False, "scale": [1.0], "offset": [0]}],
             "param_encodings": [{"name": "conv.weight", "dtype": "INT", "enc_type": "PER_CHANNEL", "bw": 8,
                                  "is_sym": True, "scale": [0.5, 0.25], "offset": [-128]}]}
    out = A.legacy_overrides(aimet, known={"relu_out", "conv.weight"})
    assert set(out["activation_encodings"]) == {"relu_out"}  # a tensor the DLC lacks is dropped
    (act,) = out["activation_encodings"]["relu_out"]
    assert act["offset"] == -10 and act["bitwidth"] == 8 and act["is_symmetric"] == "False"
    assert act["min"] == pytest.approx(-0.2) and act["max"] == pytest.approx(0.02 * 245)
    w = out["param_encodings"]["conv.weight"]
    assert [e["scale"] for e in w] == [0.5, 0.25]  # one entry per channel, the offset repeated
    assert all(e["offset"] == -128 and e["is_symmetric"] == "True" for e in w)
    assert w[0]["min"] == pytest.approx(-64.0) and w[0]["max"] == pytest.approx(63.5)


def test_overrides_from_legacy_aimet_file_pass_through_filtered():
    entry = [{"bitwidth": 16, "dtype": "int", "is_symmetric": "False", "max": 1.0, "min": 0.0, "offset": 0,
              "scale": 1.0 / 65535}]
    aimet = {"version": "0.6.1", "activation_encodings": {"a": entry, "b": entry}, "param_encodings": {}}
    out = A.legacy_overrides(aimet, known={"a"})
    assert out == {"activation_encodings": {"a": entry}, "param_encodings": {}}


def test_sdk_overrides_name_only_tensors_of_the_float_graph(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(g), str(tmp_path / "f.onnx"))
    enc = [{"name": n, "dtype": "INT", "enc_type": "PER_TENSOR", "bw": 8, "is_sym": False, "scale": [0.1],
            "offset": [0]} for n in ("x", "y", "y_q_only")]
    (tmp_path / A.AIMET_ENCODINGS).write_text(json.dumps({"version": "1.0.0", "activation_encodings": enc,
                                                          "param_encodings": []}))
    dest = A.write_sdk_overrides(tmp_path / A.AIMET_ENCODINGS, tmp_path / "f.onnx", tmp_path / "o.json")
    assert sorted(json.loads(dest.read_text())["activation_encodings"]) == ["x", "y"]


@pytest.mark.parametrize("arch,expected", [(68, 68), (69, 69), (73, 73), (75, 75), (79, 79), (81, 79), (66, 68)])
def test_htp_config_is_the_newest_not_newer_than_the_target(arch, expected):
    assert A.htp_config_for(arch, [68, 69, 73, 75, 79]) == f"htp_quantsim_config_v{expected}.json"


def test_every_target_arch_has_its_own_config_in_aimet():
    pytest.importorskip("aimet_onnx")
    from bot.targets import SOCS

    for soc in SOCS.values():  # aimet-onnx 2.42 ships v66–v85: no target falls back to another arch
        assert A.htp_config_for(soc.htp_arch) == f"htp_quantsim_config_v{soc.htp_arch}.json"


def test_options_reject_unknown_and_conflicting_techniques():
    assert A.AimetOptions.from_opts({"techniques": ["seqmse", "cle"]}).techniques == ("cle", "seqmse")
    with pytest.raises(BadInput, match="unknown AIMET technique"):
        A.AimetOptions.from_opts({"techniques": ["magic"]})
    with pytest.raises(BadInput, match="pick one"):
        A.AimetOptions.from_opts({"techniques": ["seqmse", "adaround"]})


class _Spec:
    class target:  # noqa: N801 — stands in for TargetSpec's two fields the repairs read
        precision = "w8a8"
        soc = "SM8650"


ACCURACY = Failure("validate", FailureKind.ACCURACY, "cosine 0.9 < 0.99")


def _propose(repair_id: str, state: RepairState) -> RepairState | None:
    return all_repairs()[repair_id].propose(ACCURACY, state, {"spec": _Spec})


def test_repairs_switch_to_aimet_and_add_one_technique(monkeypatch):
    monkeypatch.setattr(A, "unavailable", lambda: None)
    s = _propose("aimet-seqmse", RepairState())
    assert s.options["quantize"] == {"engine": "aimet", "techniques": ["seqmse"]}
    assert _propose("aimet-seqmse", s) is None  # already there: nothing new to try
    s2 = _propose("aimet-cle", s)
    assert s2.options["quantize"]["techniques"] == ["cle", "seqmse"]  # AIMET's order: CLE first
    s3 = _propose("aimet-adaround", s2)
    assert s3.options["quantize"]["techniques"] == ["cle", "adaround"]  # AdaRound replaces SeqMSE
    fp16 = RepairState(options={"quantize": {"precision": "fp16"}})
    assert _propose("aimet-cle", fp16) is None  # nothing to quantize


def test_repairs_not_proposed_without_aimet_and_the_reason_is_recorded(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "aimet_onnx" else real(name, *a))
    assert "not installed" in A.unavailable()
    for rid in ("aimet-cle", "aimet-seqmse", "aimet-adaround"):
        assert _propose(rid, RepairState()) is None
    from bot.repair.loop import unavailable_repairs

    why = unavailable_repairs()
    assert set(why) == {"aimet-cle", "aimet-seqmse", "aimet-adaround"}
    assert all("aipc-bot[aimet]" in w for w in why.values())


def test_engine_option_without_aimet_is_a_bad_input(monkeypatch, tmp_path):
    from bot.stages.quantize import _aimet_quantize

    monkeypatch.setattr(A, "unavailable", lambda: "aimet-onnx is not installed")
    with pytest.raises(BadInput, match="quantize.engine: aimet cannot run"):
        _aimet_quantize(tmp_path / "m.onnx", tmp_path / "q.onnx", tmp_path, [], "w8a8", "SM8650", {})


# ── with aimet ────────────────────────────────────────────────────────────────────────────────
from bench.bench_aimet import SMALL_NET as TRAINED_NET  # noqa: E402  a convnet trained for a few seconds


def _write_trained(folder, cosine_min=0.97, **extra):
    pytest.importorskip("aimet_onnx")
    from tests.conftest import write_model

    return write_model(folder, {
        "name": "small", "target": {"precision": "w8a8", "soc": "SM8650"}, "calibration": {"samples": 8},
        "validation": {"samples": 2, "outputs": {"y": {"cosine_min": cosine_min}}}, **extra},
        code=TRAINED_NET, name="small")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return _write_trained(tmp_path_factory.mktemp("models") / "small")


def _run(folder, out, options):
    from bot import backends
    from bot.pipeline import Pipeline
    from bot.spec import load_spec

    spec, folder = load_spec(folder)
    return Pipeline(spec, folder, out, backends.for_target(spec.target)).run(options)


@pytest.mark.htp
@pytest.mark.parametrize("techniques", [[], ["cle"], ["seqmse"]])
def test_aimet_engine_deploys_a_trained_net_on_the_htp(trained, tmp_path, techniques):
    outcome = _run(trained, tmp_path / "d", {"quantize": {"engine": "aimet", "techniques": techniques}})
    q = outcome.result("quantize")
    assert q is not None and q.passed, outcome.failure
    assert q.metrics["aimet"]["config"] == "htp_quantsim_config_v75.json"  # SM8650 is HTP v75
    assert q.metrics["aimet"]["techniques"] == techniques
    assert set(techniques) <= set(q.metrics["aimet"]["seconds"])
    qdir = outcome.dirs["quantize"]
    qdq = onnx.load(str(qdir / "model.onnx"))
    assert any(n.op_type == "QuantizeLinear" for n in qdq.graph.node)
    # the depthwise Conv → ReLU6 reads its Conv directly, as the HTP's fused kernel does (one rounding)
    made = {o: n for n in qdq.graph.node for o in n.output}
    assert [made[n.input[0]].op_type for n in qdq.graph.node if n.op_type == "Clip"] == ["Conv"]
    assert q.metrics["aimet"]["fused_quantizers_dropped"] >= 1
    overrides = json.loads((qdir / A.AIMET_ENCODINGS).read_text())
    weights = {i.name for i in onnx.load(str(qdir / A.AIMET_FLOAT)).graph.initializer}
    assert overrides["param_encodings"] and set(overrides["param_encodings"]) <= weights
    assert overrides["activation_encodings"]
    v = outcome.result("validate")
    assert v is not None and v.passed, outcome.failure  # the real HTP ran AIMET's QDQ model within the bar
    assert v.metrics["outputs"]["y"]["cosine"] >= 0.97


@pytest.mark.htp
def test_repair_loop_reaches_aimet_and_records_it(tmp_path):
    """With the onnxruntime repairs excluded, an unreachable bar makes the loop try the AIMET ones."""
    from bot import backends
    from bot.repair.loop import RepairLoop
    from bot.spec import load_spec

    spec, folder = load_spec(_write_trained(tmp_path / "m" / "small", cosine_min=0.99999,
                                            limits={"repair_attempts": 2}))
    ort = [r for r, rep in all_repairs().items() if not r.startswith("aimet-")]
    loop = RepairLoop(spec, folder, tmp_path / "o", backends.for_target(spec.target), exclude=ort)
    result = loop.run(loop.run_state(RepairState()))
    tried = [a.repair for a in result.attempts]
    assert tried == ["aimet-cle", "aimet-seqmse"], tried  # the quant level's order, one attempt each
    assert all("quantize.engine" in a.diff or "engine" in a.diff for a in result.attempts)
