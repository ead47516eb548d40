"""The staged pipeline end to end on the real QNN HTP backend, its store and its manifest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnxruntime as ort
import pytest
import yaml

from bot import backends
from bot.backends.ort_qnn import session_options
from bot.pipeline import Pipeline
from bot.spec import load_spec
from bot.store import sha256_file

pytestmark = pytest.mark.htp


def _pipeline(model_dir: Path, out: Path) -> Pipeline:
    spec, folder = load_spec(model_dir)
    return Pipeline(spec, folder, out, backends.for_target(spec.target))


def test_deploys_to_a_context_binary_that_loads_with_fallback_disabled(tiny_model, tmp_path):
    out = tmp_path / "dep"
    outcome = _pipeline(tiny_model, out).run()
    assert outcome.passed, outcome.failure
    assert [r.stage for r in outcome.results] == ["load", "export", "optimize", "compat", "quantize",
                                                   "compile", "validate", "package"]
    bins = list((out / "package").glob("*.bin"))
    assert bins, "no QNN context binary in the package"
    spec, _ = load_spec(tiny_model)
    # loads on the HTP with CPU fallback disabled: would raise if any node were left to the CPU
    sess = ort.InferenceSession(str(out / "package" / "model_ctx.onnx"), session_options(spec.target))
    assert [i.name for i in sess.get_inputs()] == ["x"]
    cos = outcome.result("validate").metrics["outputs"]["y"]["cosine"]
    assert cos >= 0.95

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "deployed"
    assert manifest["versions"]["onnxruntime-qnn"]
    for rel, meta in manifest["artifacts"].items():
        assert sha256_file(out / rel) == meta["sha256"] and (out / rel).stat().st_size == meta["bytes"]
    assert all(s["seconds"] >= 0 and s["checks"] for s in manifest["stages"])
    iface = json.loads((out / "package" / "interface.json").read_text())
    assert iface["inputs"][0]["shape"] == [1, 3, 16, 16] and iface["target"]["htp_arch"] == 75


def test_unchanged_rerun_skips_every_stage_and_a_threshold_change_reruns_only_validate(tiny_model, tmp_path):
    out = tmp_path / "dep"
    first = _pipeline(tiny_model, out).run()
    assert first.passed
    again = _pipeline(tiny_model, out).run()
    assert all(r.cached for r in again.results)

    spec_path = tiny_model / "aipc.yaml"
    raw = yaml.safe_load(spec_path.read_text())
    raw["validation"]["outputs"] = {"y": {"cosine_min": 0.9}}
    spec_path.write_text(yaml.safe_dump(raw))
    third = _pipeline(tiny_model, out).run()
    # the definition file is part of the model folder, so load/export re-key; what matters is that
    # stages which do not read it (optimize..compile) keep their keys when their inputs are equal
    rerun = [r.stage for r in third.results if not r.cached]
    assert "validate" in rerun and "compile" not in rerun and "quantize" not in rerun


def test_an_unchanged_rerun_writes_the_manifest_once_and_keeps_the_stage_folders(tiny_model, tmp_path, monkeypatch):
    """Every stage cached: no "running" manifest per stage (only the final one) and no stage folder relinked;
    the manifest still describes the run (deployed, every stage cached, the same artifacts)."""
    from bot.pipeline import manifest as manifest_mod

    out = tmp_path / "dep"
    first = _pipeline(tiny_model, out).run()
    assert first.passed
    before = json.loads((out / "manifest.json").read_text())
    folders = {s: (out / s).stat().st_ino for s in before["workflow"]}
    writes = []
    real = manifest_mod.write_json
    monkeypatch.setattr(manifest_mod, "write_json", lambda p, o: (writes.append(o["status"]), real(p, o)))
    again = _pipeline(tiny_model, out).run()
    assert all(r.cached for r in again.results) and writes == ["deployed"]
    assert {s: (out / s).stat().st_ino for s in before["workflow"]} == folders
    after = json.loads((out / "manifest.json").read_text())
    assert after["status"] == "deployed" and all(s["cached"] for s in after["stages"])
    assert after["artifacts"] == before["artifacts"]


def test_a_precision_change_reruns_quantize_onward_but_not_the_float_graph_probe(tiny_model, tmp_path):
    """compat places the float graph on the HTP; what precision it is quantized to later does not change
    that, so a precision repair (w8a16-all, fp16-precision) must not pay for the probe again."""
    out = tmp_path / "dep"
    first = _pipeline(tiny_model, out).run()
    assert first.passed and not first.result("compat").cached
    spec_path = tiny_model / "aipc.yaml"
    raw = yaml.safe_load(spec_path.read_text())
    raw["target"] = {"precision": "w8a8"}
    spec_path.write_text(yaml.safe_dump(raw))
    second = _pipeline(tiny_model, out).run()
    assert second.passed
    by_stage = {r.stage: r for r in second.results}
    assert by_stage["compat"].cached
    assert not by_stage["quantize"].cached and second.result("quantize").metrics["precision"] == "w8a8"
    raw["target"] = {"precision": "w8a8", "soc": "SM8550"}  # another chip: the placement must be asked again
    spec_path.write_text(yaml.safe_dump(raw))
    third = _pipeline(tiny_model, out).run()
    assert not {r.stage: r for r in third.results}["compat"].cached


def test_a_run_killed_mid_stage_resumes_without_losing_finished_stages(tiny_model, tmp_path):
    out = tmp_path / "dep"
    gate = tmp_path / "hold-export"
    gate.write_text("1")
    env = {**os.environ, "TINY_SLOW_EXPORT": str(gate)}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "deploy", str(tiny_model), "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list((out / ".work").glob("export-*.partial")):
        time.sleep(0.1)
    assert list((out / ".work").glob("export-*.partial")), "export never started"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    gate.unlink()
    assert not (out / "export").exists(), "a half-written stage was published"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "running" and [s["stage"] for s in manifest["stages"]] == ["load"]

    outcome = _pipeline(tiny_model, out).run()
    assert outcome.passed
    assert outcome.results[0].cached and not outcome.results[1].cached
