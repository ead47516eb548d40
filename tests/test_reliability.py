"""Bad input, hostile definitions and everyday accidents (issue 12): each ends with a clear message
and the exit code the README promises, never a traceback; the manifest describes the deployment
beside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.errors import BadInput
from bot.pipeline.limits import StageTimeout, stage_deadline
from bot.records import Failure, FailureKind
from bot.repair.taxonomy import classify
from bot.spec import load_spec
from bot.stages.validate import why_undefined
from tests.conftest import TINY_MODEL, write_model


def cli(*args: str):
    """The CLI's entry function in-process: exit code and the text a user sees."""
    r = CliRunner().invoke(app, list(args))
    text = r.output + (r.stderr if r.stderr_bytes is not None else "")
    assert r.exception is None or isinstance(r.exception, SystemExit), f"crashed: {r.exception!r}\n{text}"
    assert "Traceback" not in text, text
    return r.exit_code, " ".join(text.split())


def refused(tmp_path, spec=None, code=TINY_MODEL) -> str:
    folder = write_model(tmp_path / "m", spec, code=code)
    with pytest.raises(BadInput) as e:
        load_spec(folder)
    return str(e.value)


NAN_MODEL = TINY_MODEL.replace("return self.c2(torch.relu(self.c1(x)))",
                               "return torch.log(self.c2(torch.relu(self.c1(x))) - 10)")
ZERO_MODEL = TINY_MODEL.replace("return self.c2(torch.relu(self.c1(x)))",
                                "return self.c2(torch.relu(self.c1(x))) * 0")


# 1. sizes are estimated before anything is allocated
def test_huge_shape_is_refused_with_its_size_before_allocating(tmp_path):
    msg = refused(tmp_path, {"inputs": [{"name": "x", "shape": [1, 3, 100000, 100000]}]})
    assert "inputs:" in msg and "GiB" in msg and "111.8 GiB per sample" in msg and "limits.data_gb" in msg
    # and through the CLI: exit 2, no MemoryError
    code, text = cli("deploy", str(tmp_path / "m"), "--out", str(tmp_path / "o"))
    assert code == 2 and "would take about" in text


def test_data_budget_is_the_definitions_to_set(tmp_path):
    spec = {"inputs": [{"name": "x", "shape": [1, 3, 512, 512]}], "calibration": {"samples": 64},
            "limits": {"data_gb": 0.1}}
    assert "limit is 102.4 MiB" in refused(tmp_path, spec)
    write_model(tmp_path / "ok", dict(spec, limits={"data_gb": 1.0}))
    load_spec(tmp_path / "ok")  # the same definition with room for it loads


# 2. not UTF-8, binary, empty, aliases
def test_definition_that_is_not_utf8_names_line_and_byte(tmp_path):
    folder = write_model(tmp_path / "m")
    (folder / "aipc.yaml").write_bytes((folder / "aipc.yaml").read_bytes() + b"# caf\xe9\n")
    code, text = cli("deploy", str(folder), "--out", str(tmp_path / "o"))
    assert code == 2 and "not UTF-8" in text and "0xe9" in text and "aipc.yaml:" in text


@pytest.mark.parametrize("content, needle", [
    (b"", "got an empty file"),
    (b"\x00\x01\x02binary", "binary file"),
    (b"- just\n- a list\n", "got a list"),
    (b"a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     b"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n", "aliases"),
    (b"name: x\nentry: !!python/object/apply:os.system ['true']\n", "malformed YAML"),
])
def test_unreadable_definitions(tmp_path, content, needle):
    folder = write_model(tmp_path / "m")
    (folder / "aipc.yaml").write_bytes(content)
    code, text = cli("deploy", str(folder), "--out", str(tmp_path / "o"))
    assert code == 2 and needle in text and "aipc.yaml" in text


# 3 and 5. nothing outside the model folder is read or imported
@pytest.mark.parametrize("files, needle", [(["/etc/passwd"], "absolute path"),
                                           (["../../../etc/passwd"], "outside the model folder")])
def test_sample_files_outside_the_folder_are_refused(tmp_path, files, needle):
    msg = refused(tmp_path, {"inputs": [{"name": "x", "shape": [1, 3, 16, 16], "files": files}]})
    assert "inputs[0].files[0]" in msg and needle in msg


def test_symlinks_that_leave_the_folder_are_refused(tmp_path):
    folder = write_model(tmp_path / "m")
    outside = tmp_path / "evil.py"
    outside.write_text(TINY_MODEL + "\nraise SystemExit('imported code outside the folder')\n")
    (folder / "model.py").unlink()
    (folder / "model.py").symlink_to(outside)
    with pytest.raises(BadInput) as e:
        load_spec(folder)
    assert "entry" in str(e.value) and "outside the model folder" in str(e.value)
    # a helper module linked from elsewhere is refused too, even if the definition never names it
    (folder / "model.py").unlink()
    (folder / "model.py").write_text(TINY_MODEL)
    (folder / "helper.py").symlink_to(outside)
    with pytest.raises(BadInput) as e:
        load_spec(folder)
    assert "helper.py is a symlink" in str(e.value)
    # a link that stays inside is fine
    (folder / "helper.py").unlink()
    (folder / "alias.py").symlink_to(folder / "model.py")
    load_spec(folder)


def test_pickled_sample_file_is_never_unpickled(tmp_path):
    folder = write_model(tmp_path / "m", {"inputs": [{"name": "x", "shape": [1, 3, 16, 16], "files": ["a.npy"]}]})
    np.save(folder / "a.npy", np.array([{"not": "an array"}], dtype=object), allow_pickle=True)
    code, text = cli("deploy", str(folder), "--out", str(tmp_path / "o"))
    assert code == 2 and "a.npy is not a .npy array" in text and "inputs[0].files[0]" in text


# 4. an output that is not finite says which and how much
def test_nan_output_names_the_output_and_how_much(tmp_path):
    folder = write_model(tmp_path / "m", code=NAN_MODEL)
    code, text = cli("deploy", str(folder), "--out", str(tmp_path / "o"))
    assert code == 1
    assert "golden FP32 output is not finite" in text and "'y' has 1024 NaN of 1024 values (100%)" in text
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert m["status"] == "failed" and m["stages"][0]["failure"]["details"]["nonfinite_outputs"] == ["y"]


def test_taxonomy_never_crashes_on_a_missing_failure():
    assert classify(None).kind == FailureKind.TOOL_ERROR
    f = Failure("compile", FailureKind.TOOL_ERROR, "Failed to finalize QNN graph")
    assert classify(f).kind == FailureKind.COMPILE_ERROR


# 6. every name a definition uses must exist
@pytest.mark.parametrize("spec, needle", [
    ({"validation": {"outputs": {"nosuch": {"cosine_min": 0.9}}}},
     "validation.outputs.nosuch: no output named 'nosuch' (the definition has: y)"),
    ({"repairs": ["w8a16-everything"]}, "repairs[0]: no repair named 'w8a16-everything'"),
    ({"variants": [{"name": "big", "shapes": {"z": [1, 3, 32, 32]}}]}, "variants[0].shapes.z: no input named 'z'"),
    ({"inputs": [{"name": "x", "shape": [1, 3, 16, 16], "files": ["a.npy"]}, {"name": "w", "shape": [1]}]},
     "x have sample files but w do not"),
])
def test_names_that_do_not_exist_are_refused(tmp_path, spec, needle):
    assert needle in refused(tmp_path, spec)


def test_output_names_are_checked_against_the_model_when_not_declared(tmp_path):
    folder = write_model(tmp_path / "m", {"outputs": [], "validation": {"outputs": {"y": {"cosine_min": 0.9}}}})
    code, text = cli("deploy", str(folder), "--out", str(tmp_path / "o"))
    assert code == 2 and "validation.outputs.y: the model has no output of that name (its outputs: output)" in text


def test_parts_must_fit_the_output(tmp_path):
    folder = write_model(tmp_path / "m", {"validation": {"outputs": {"y": {"parts": {"boxes": [0, 9]}}}}})
    code, text = cli("deploy", str(folder), "--out", str(tmp_path / "o"))
    assert code == 2 and "validation.outputs.y.parts.boxes: [0, 9) does not fit output 'y'" in text


# 7. repairs applied up front
def test_upfront_repairs_set_the_options_before_the_first_run(tmp_path):
    from bot.deploy import upfront_state

    write_model(tmp_path / "m", {"target": {"precision": "w8a8"}, "repairs": ["w8a16-all", "switch-exporter",
                                                                              "resize-to-htp"]})
    spec, folder = load_spec(tmp_path / "m")
    state = upfront_state(spec, folder)
    assert state.options["quantize"]["precision"] == "w8a16"
    assert state.options["export"]["exporter"] == "dynamo"
    assert state.options["optimize"]["rewrites"] == ["resize-to-htp"]
    write_model(tmp_path / "n", {"repairs": ["int16-localized"]})
    spec, folder = load_spec(tmp_path / "n")
    with pytest.raises(BadInput, match=r"repairs\[0\]: 'int16-localized' cannot be applied up front"):
        upfront_state(spec, folder)


# 10. an undefined cosine says what happened
def test_undefined_cosine_says_which_side_is_constant():
    ref = [np.arange(6.0)]
    assert why_undefined("y", ref, [np.zeros(6)]) == \
        "the deployed output y is constant: 0 for every sample (cosine undefined)"
    assert "the golden output y is constant: 3" in why_undefined("y", [np.full(6, 3.0)], ref)


# 11. time limits per stage
def test_stage_deadline_interrupts_python_level_hangs():
    t0 = time.monotonic()
    with pytest.raises(StageTimeout) as e:
        with stage_deadline("load", 0.3):
            while True:
                time.sleep(0.01)
    assert time.monotonic() - t0 < 3 and "stage load did not finish within 0.3 s" in str(e.value)


def test_hung_forward_is_stopped_naming_the_stage(tmp_path):
    hang = TINY_MODEL.replace("return self.c2(torch.relu(self.c1(x)))", "while True:\n            clock.sleep(0.01)")
    hang = "import time as clock\n" + hang
    folder = write_model(tmp_path / "m", {"limits": {"stage_seconds": 1}}, code=hang)
    t0 = time.monotonic()
    code, text = cli("deploy", str(folder), "--out", str(tmp_path / "o"))
    assert code == 1 and time.monotonic() - t0 < 60
    assert "load: stopped after 1 s (limits.stage_seconds): the model's forward" in text


def test_a_stage_stuck_where_signals_cannot_reach_is_ended_by_the_watchdog(tmp_path):
    """Native code (QNN graph preparation) never returns to the interpreter; blocking SIGALRM in the
    forward stands in for it. The CLI's watchdog ends the run with the message, exit 1."""
    stuck = TINY_MODEL.replace("return self.c2(torch.relu(self.c1(x)))",
                               "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])\n"
                               "        clock.sleep(600)")
    # 15 s, not 1: the load stage imports torch itself (a cached deploy imports nothing heavy), and on a
    # loaded machine that import alone can outlast 1 s, so SIGALRM would fire before the forward blocks it
    folder = write_model(tmp_path / "m", {"limits": {"stage_seconds": 15}}, code="import signal, time as clock\n" + stuck)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "deploy", str(folder), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=400, env={**os.environ, "AIPC_HARD_STOP_GRACE": "1"})
    assert proc.returncode == 1 and time.monotonic() - t0 < 300, proc.stderr  # the sleep is 600 s
    assert "stage load did not finish within 15 s" in proc.stderr and "Traceback" not in proc.stderr


# 9 and 10 on the HTP: the manifest describes the deployment beside it
@pytest.mark.htp
def test_manifest_describes_the_kept_run_when_the_loop_keeps_nothing(tmp_path):
    folder = write_model(tmp_path / "m", {"target": {"precision": "w8a8"}, "limits": {"repair_attempts": 3}},
                         code=ZERO_MODEL)
    out = tmp_path / "o"
    code, text = cli("deploy", str(folder), "--out", str(out))
    assert code == 1 and "the deployed output y is constant: 0 for every sample" in text
    assert "worst cosine -2" not in text
    m = json.loads((out / "manifest.json").read_text())
    assert any(r["repair"] == "w8a16-all" and not r["kept"] for r in m["repairs"])  # tried, discarded
    assert m["deployed"]["precision"] == "w8a8" == m["target"]["precision"]
    assert m["requested"]["target"]["precision"] == "w8a8"
    q = json.loads((out / "quantize" / "result.json").read_text())
    assert q["metrics"]["precision"] == "w8a8"  # the stage folder is the kept run's, not the last try's
    for rel, meta in m["artifacts"].items():
        from bot.store import sha256_file

        assert sha256_file(out / rel) == meta["sha256"], rel
    assert m["seconds_total"] >= sum(r["seconds"] for r in m["repairs"]) > 0


@pytest.mark.htp
def test_upfront_repair_is_deployed_and_both_settings_recorded(tmp_path):
    folder = write_model(tmp_path / "m", {"target": {"precision": "w8a8"}, "repairs": ["w8a16-all"]})
    out = tmp_path / "o"
    code, text = cli("deploy", str(folder), "--out", str(out), "--no-repair")
    assert code == 0, text
    m = json.loads((out / "manifest.json").read_text())
    assert m["requested"]["target"]["precision"] == "w8a8" and m["requested"]["repairs"] == ["w8a16-all"]
    assert m["deployed"]["precision"] == "w8a16" == m["target"]["precision"]
    assert m["repair_state"]["options"]["quantize"]["precision"] == "w8a16"
    iface = json.loads((out / "package" / "interface.json").read_text())
    assert iface["target"]["precision"] == "w8a16"  # what was built, not what was asked for
    assert m["seconds_total"] > 0
