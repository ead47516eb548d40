"""The QAIRT SDK backend against a stand-in SDK tree (tests/standins): command construction, file
formats, output parsing, failures as structured records, and the encodings exchange.

The stand-in tools honour the documented command-line contract and compute with onnxruntime on
the CPU; this verifies the bot's side of that contract, not real Qualcomm tools or hardware.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).parent / "standins"))
import sdk_tree  # noqa: E402

from bot import backends  # noqa: E402
from bot.backends import qairt_io as Q  # noqa: E402
from bot.backends.base import Compiled, CompileRequest  # noqa: E402
from bot.backends.qairt_sdk import QairtSdkBackend  # noqa: E402
from bot.backends.sdk_errors import classify  # noqa: E402
from bot.errors import BadInput  # noqa: E402
from bot.records import FailureKind, StageFailed  # noqa: E402
from bot.spec.schema import TargetSpec  # noqa: E402

MODEL_PY = textwrap.dedent('''
    import torch, torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 8, 3, padding=1)
            self.c2 = nn.Conv2d(8, 8, 3, padding=1)
            self.head = nn.Linear(8, 4)

        def forward(self, image):
            x = torch.relu(self.c2(torch.relu(self.c1(image))))
            return self.head(x.mean((2, 3)))

    def build():
        torch.manual_seed(0)
        return Net().eval()
''')


def write_model(folder: Path, engine: str, precision: str = "w8a8", runtime: str = "qnn") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.py").write_text(MODEL_PY)
    (folder / "aipc.yaml").write_text(textwrap.dedent(f'''
        name: tiny_conv
        entry: model.py:build
        inputs:
          - name: image
            shape: [1, 3, 8, 8]
        outputs: [logits]
        calibration: {{samples: 4}}
        target: {{engine: {engine}, precision: {precision}, runtime: {runtime}, soc: SM8650}}
        validation: {{samples: 2}}
    '''))
    return folder


@pytest.fixture
def sdk(tmp_path, monkeypatch):
    root = sdk_tree.make_sdk(tmp_path / "qairt" / sdk_tree.VERSION)
    log = tmp_path / "standin.jsonl"
    for k, v in sdk_tree.env_for(root, log).items():
        monkeypatch.setenv(k, v)
    for k in ("QNN_SDK_ROOT", "SNPE_ROOT", "AIPC_STANDIN_FAIL", "AIPC_STANDIN_STDERR"):
        monkeypatch.delenv(k, raising=False)
    return root, log


def calls(log: Path, tool: str) -> list[dict]:
    if not log.exists():
        return []
    return [c for c in map(json.loads, log.read_text().splitlines()) if c["tool"] == tool]


def deploy(model_dir: Path, out: Path, workflow=None, options=None):
    from bot.pipeline import Pipeline
    from bot.spec import load_spec

    spec, folder = load_spec(model_dir)
    backend = backends.for_target(spec.target)
    wf = workflow or ["load", "export", "optimize", "compat", "quantize", "compile", "validate"]
    return Pipeline(spec, folder, out, backend, workflow=wf).run(options=options)



def test_compile_hands_the_sdk_the_calibration_the_quantize_stage_used(sdk, tmp_path):
    """A repair's calibration method (a stage option, not the definition's) reaches the SDK quantizer:
    compile takes it from the quantize stage's record instead of reading the option again."""
    root, log = sdk
    out = deploy(write_model(tmp_path / "m", "qairt-sdk"), tmp_path / "out",
                 options={"quantize": {"calibrate_method": "entropy"}})
    assert out.passed, out.failure
    assert out.result("quantize").metrics["calibrate_method"] == "entropy"
    (quant,) = calls(log, "qairt-quantizer")
    a = quant["argv"]
    assert a[a.index("--act_quantizer_calibration") + 1] == "entropy"

def tiny_onnx(path: Path, op: str = "Relu") -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])
    nodes = [helper.make_node("Relu", ["x"], ["t"], name="relu0")]
    if op == "Einsum":
        nodes.append(helper.make_node("Einsum", ["t"], ["y"], equation="nchw->nchw", name="einsum0"))
    else:
        nodes.append(helper.make_node("Sigmoid", ["t"], ["y"], name="sig0"))
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, str(path))
    return path


# ── the whole pipeline ─────────────────────────────────────────────────────────────────────────
def test_pipeline_through_qairt_sdk_passes_validation(sdk, tmp_path):
    root, log = sdk
    out = deploy(write_model(tmp_path / "m", "qairt-sdk"), tmp_path / "out")
    assert out.passed, out.failure
    comp, val = out.result("compile"), out.result("validate")
    assert comp.metrics["format"] == "qnn-context-binary" and comp.artifacts["entry"] == "model.bin"
    assert val.metrics["backend"] == "qairt-sdk" and val.metrics["outputs"]["logits"]["cosine"] > 0.999
    assert val.metrics["latency_ms_median"] > 0
    # the chain and its flags, as the SDK documents them
    (dry, conv), (quant,), (ctx,), (run,) = (calls(log, t) for t in ("qairt-converter", "qairt-quantizer",
                                                                       "qnn-context-binary-generator", "qnn-net-run"))
    assert "--dry_run" in dry["argv"] and "--dry_run" not in conv["argv"]  # compat probed with the converter
    assert conv["argv"][:2] == ["--input_network", conv["argv"][1]] and conv["argv"][1].endswith(".onnx")
    a = quant["argv"]
    assert a[a.index("--act_bitwidth") + 1] == "8" and quant["calibration_samples"] == 4
    assert a[a.index("--act_quantizer_calibration") + 1] == "min-max"
    assert "--quantization_overrides" in a  # the quantize stage's encodings, carried over
    assert ctx["device"] == {"dsp_arch": "v75", "soc_id": 57}
    c = ctx["argv"]
    assert Path(c[c.index("--backend") + 1]) == root / "lib" / sdk_tree.HOST / "libQnnHtp.so"
    assert Path(c[c.index("--model") + 1]).name == "libQnnModelDlc.so" and c[c.index("--binary_file") + 1] == "model"
    assert "--retrieve_context" in run["argv"] and run["samples"] == 2
    assert (tmp_path / "out" / "compile" / "sdk_logs" / "qairt-quantizer.log").exists()


def test_snpe_path_graph_prepare_and_net_run(sdk, tmp_path):
    root, log = sdk
    out = deploy(write_model(tmp_path / "m", "qairt-sdk", precision="w8a16", runtime="snpe"), tmp_path / "out")
    assert out.passed, out.failure
    assert out.result("compile").metrics["format"] == "snpe-dlc"
    (prep,), (quant,), (run,) = calls(log, "snpe-dlc-graph-prepare"), calls(log, "snpe-dlc-quant"), calls(log, "snpe-net-run")
    assert prep["socs"] == "sm8650" and quant["act_bitwidth"] == 16
    assert run["layout"] == "NCHW"  # --preserve_io layout kept the source layout
    assert "--override_params" in quant["argv"]


# ── encodings exchange ─────────────────────────────────────────────────────────────────────────
def test_16bit_override_from_quantize_stage_reaches_quantizer(sdk, tmp_path):
    _, log = sdk
    model = write_model(tmp_path / "m", "qairt-sdk")
    first = deploy(model, tmp_path / "out", workflow=["load", "export", "optimize"])
    g = onnx.load(str(tmp_path / "out" / "optimize" / first.result("optimize").artifacts["onnx"])).graph
    relu_out = next(n.output[0] for n in g.node if n.op_type == "Relu")  # an activation a repair keeps in 16 bits
    out = deploy(model, tmp_path / "out", options={"quantize": {"overrides": {relu_out: {"quant_type": "QUInt16"}}}})
    assert out.passed, out.failure
    enc = json.loads((tmp_path / "out" / "quantize" / "encodings.json").read_text())
    assert enc[relu_out]["bits"] == 16
    passed = calls(log, "qairt-quantizer")[-1]["overrides"]
    (entry,) = passed["activation_encodings"][relu_out]
    assert entry["bitwidth"] == 16
    assert entry["scale"] == pytest.approx(float(np.ravel(enc[relu_out]["scale"])[0]))
    assert entry["offset"] == -int(np.ravel(enc[relu_out]["offset"])[0])
    float_tensors = {"image"} | {o for n in g.node for o in n.output} | {i.name for i in g.initializer}
    assert set(passed["activation_encodings"]) <= float_tensors  # QDQ-only tensors left out
    assert any(e[0]["bitwidth"] == 8 for e in passed["activation_encodings"].values())


def test_overrides_conversion_per_channel_and_signed():
    enc = {"w": {"scale": [0.5, 0.25], "offset": [0, 0], "dtype": "int8", "bits": 8},
           "a": {"scale": 0.1, "offset": 32768, "dtype": "uint16", "bits": 16}}
    o = Q.overrides_from_encodings(enc, params={"w"})
    assert [e["scale"] for e in o["param_encodings"]["w"]] == [0.5, 0.25]
    assert o["param_encodings"]["w"][0]["offset"] == -128 and o["param_encodings"]["w"][0]["is_symmetric"] == "True"
    a = o["activation_encodings"]["a"][0]
    assert a["offset"] == -32768 and a["min"] == pytest.approx(-3276.8) and a["max"] == pytest.approx(0.1 * 32767)


# ── failures as structured records ─────────────────────────────────────────────────────────────
def _compile(tmp_path, precision="w8a8", encodings=None):
    f = tiny_onnx(tmp_path / "g.onnx")
    calib = [{"x": np.random.default_rng(i).random((1, 2, 4, 4), dtype=np.float32)} for i in range(2)]
    req = CompileRequest(float_onnx=f, deploy_onnx=f, target=TargetSpec(engine="qairt-sdk", precision=precision),
                         out_dir=tmp_path / "c", calibration=calib, encodings=encodings)
    return QairtSdkBackend(), req


def test_nonzero_exit_keeps_tool_text_and_classifies(sdk, tmp_path, monkeypatch):
    msg = ("QnnDsp <E> \"GridSample\" generated: could not create op\n"
           "QnnDsp <E> Failed to finalize graph (id: 1) with err 1002")
    monkeypatch.setenv("AIPC_STANDIN_FAIL", "qnn-context-binary-generator=exit")
    monkeypatch.setenv("AIPC_STANDIN_STDERR", msg)
    be, req = _compile(tmp_path)
    with pytest.raises(StageFailed) as e:
        be.compile(req)
    f = e.value.failure
    assert f.stage == "compile" and f.kind == FailureKind.OP_REJECTED
    assert msg in f.log and f.details["returncode"] == 3 and f.details["tool"] == "qnn-context-binary-generator"
    assert [n.op for n in f.nodes] == ["GridSample"]
    assert "--dlc_path" in f.details["command"]


def test_missing_output_is_a_tool_error(sdk, tmp_path, monkeypatch):
    monkeypatch.setenv("AIPC_STANDIN_FAIL", "qairt-quantizer=nooutput")
    be, req = _compile(tmp_path)
    with pytest.raises(StageFailed) as e:
        be.compile(req)
    f = e.value.failure
    assert f.kind == FailureKind.TOOL_ERROR and "wrote no model_quantized.dlc" in f.message


def test_garbage_output_from_net_run(sdk, tmp_path, monkeypatch):
    be, req = _compile(tmp_path, precision="fp16")
    c = be.compile(req)
    monkeypatch.setenv("AIPC_STANDIN_FAIL", "qnn-net-run=garbage")
    with pytest.raises(StageFailed) as e:
        be.run(c, [{"x": np.ones((1, 2, 4, 4), np.float32)}], req.target)
    f = e.value.failure
    assert f.stage == "validate" and f.kind == FailureKind.TOOL_ERROR and "garbage output" in f.message
    assert "Finished executing 1 inference" in f.log  # the tool's own text, kept


def test_garbage_dlc_is_caught_by_the_next_tool(sdk, tmp_path, monkeypatch):
    monkeypatch.setenv("AIPC_STANDIN_FAIL", "qairt-converter=garbage")
    be, req = _compile(tmp_path)
    with pytest.raises(StageFailed) as e:
        be.compile(req)
    assert e.value.failure.details["tool"] == "qairt-quantizer" and "not a valid container" in e.value.failure.log


def test_run_reads_multi_input_results_and_profile(sdk, tmp_path):
    a = helper.make_tensor_value_info("a:0", TensorProto.FLOAT, [1, 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("sum/out", TensorProto.FLOAT, [1, 3])
    m = helper.make_model(helper.make_graph([helper.make_node("Add", ["a:0", "b"], ["sum/out"])], "g", [a, b], [y]),
                          opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, str(tmp_path / "add.onnx"))
    be = QairtSdkBackend()
    req = CompileRequest(tmp_path / "add.onnx", tmp_path / "add.onnx", TargetSpec(precision="fp16"), tmp_path / "c")
    c = be.compile(req)
    feeds = [{"a:0": np.full((1, 3), i, np.float32), "b": np.arange(3, dtype=np.float32)[None]} for i in range(3)]
    r = be.run(c, feeds, req.target)
    assert [float(o["sum/out"][0, 2]) for o in r.outputs] == [2.0, 3.0, 4.0]
    assert len(r.seconds_per_inference) == 3 and all(s > 0 for s in r.seconds_per_inference)
    assert (tmp_path / "c" / "htp_config.json").exists()


def test_probe_names_refused_nodes(sdk, tmp_path):
    p = QairtSdkBackend().probe(tiny_onnx(tmp_path / "e.onnx", op="Einsum"), TargetSpec())
    assert not p.full and [(n.name, n.op) for n in p.rejected] == [("einsum0", "Einsum")]
    assert "No translation registered for op type onnx_einsum" in p.rejected[0].reason
    assert QairtSdkBackend().probe(tiny_onnx(tmp_path / "ok.onnx"), TargetSpec()).full


def test_classify_table():
    assert classify("KeyError: 'No translation registered for op type onnx_einsum.'").nodes[0].op == "Einsum"
    assert classify("QnnDsp <E> [4294967295] has incorrect Rank 6").kind == FailureKind.OP_REJECTED
    assert classify("QnnDsp <E> Dynamic tensor is not supported").kind == FailureKind.DYNAMIC_SHAPE
    assert classify("Failed to finalize QNN graph.").kind == FailureKind.COMPILE_ERROR
    assert classify("segfault somewhere").kind == FailureKind.TOOL_ERROR


# ── selection and discovery ────────────────────────────────────────────────────────────────────
def test_absent_sdk_is_a_clear_bad_input(monkeypatch, tmp_path):
    for k in ("QAIRT_SDK_ROOT", "QNN_SDK_ROOT", "SNPE_ROOT"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("QNN_SDK_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(BadInput) as e:
        backends.for_target(TargetSpec(engine="qairt-sdk"))
    assert "QAIRT SDK not found: set QAIRT_SDK_ROOT" in str(e.value) and "nowhere" in str(e.value)


def test_doctor_reports_sdk_version(sdk):
    from bot.doctor import diagnose

    rows = {n: (ok, why) for n, ok, why in diagnose()}
    assert rows["qairt-sdk"][0] and sdk_tree.VERSION in rows["qairt-sdk"][1]


def test_io_json_records_output_shapes(sdk, tmp_path):
    be, req = _compile(tmp_path, precision="fp16")
    c = be.compile(req)
    io = Q.GraphIO.load(next(p for p in c.files if p.name == Q.IO_FILE))
    assert [(t.name, t.shape) for t in io.outputs] == [("y", [1, 2, 4, 4])]
    assert isinstance(c, Compiled) and c.entry.name == "model.bin"
