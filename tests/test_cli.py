"""`aipc deploy` / `aipc validate` exit codes and the one-paragraph errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_model


def aipc(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def _assert_bad_input(proc, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in proc.stderr, proc.stderr


def test_malformed_yaml(tmp_path):
    folder = write_model(tmp_path / "m")
    (folder / "aipc.yaml").write_text("inputs: [\n  - {name: x\n")
    _assert_bad_input(aipc("deploy", str(folder), "--out", str(tmp_path / "o")), "malformed YAML", "aipc.yaml:")


def test_missing_entry_point_function(tmp_path):
    folder = write_model(tmp_path / "m", {"entry": "model.py:nothing_here"})
    _assert_bad_input(aipc("deploy", str(folder), "--out", str(tmp_path / "o")), "no function 'nothing_here'")


def test_module_that_raises_names_the_line(tmp_path):
    code = "import torch\n\ndef build():\n    raise RuntimeError('weights missing')\n"
    folder = write_model(tmp_path / "m", code=code)
    _assert_bad_input(aipc("deploy", str(folder), "--out", str(tmp_path / "o")), "weights missing", "model.py:4")


def test_wrong_input_shape(tmp_path):
    folder = write_model(tmp_path / "m", {"inputs": [{"name": "x", "shape": [1, 5, 16, 16]}]})
    proc = aipc("deploy", str(folder), "--out", str(tmp_path / "o"))
    _assert_bad_input(proc, "forward", "[1, 5, 16, 16]")
    assert not (tmp_path / "o" / "load").exists()


def test_corrupt_onnx_file(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"\x08\x07garbage-not-a-protobuf")
    (folder / "aipc.yaml").write_text("name: broken\nonnx: model.onnx\ninputs:\n  - {name: x, shape: [1, 3, 8, 8]}\n")
    _assert_bad_input(aipc("deploy", str(folder), "--out", str(tmp_path / "o")), "model.onnx")


def test_unknown_soc(tmp_path):
    folder = write_model(tmp_path / "m", {"target": {"soc": "SM1234"}})
    _assert_bad_input(aipc("deploy", str(folder), "--out", str(tmp_path / "o")), "target.soc", "SM1234")


def test_debug_shows_the_traceback(tmp_path):
    folder = write_model(tmp_path / "m", {"entry": "model.py:nothing_here"})
    proc = aipc("deploy", str(folder), "--out", str(tmp_path / "o"), "--debug")
    assert proc.returncode == 2 and "Traceback" in proc.stderr


@pytest.mark.htp
def test_exit_codes_and_validate_recheck(tmp_path):
    folder = write_model(tmp_path / "m")
    out = tmp_path / "o"
    ok = aipc("deploy", str(folder), "--out", str(out), "--no-repair")
    assert ok.returncode == 0, ok.stderr + ok.stdout
    assert "deployed" in ok.stdout and "package" in ok.stdout
    again = aipc("validate", str(folder), "--out", str(out))
    assert again.returncode == 0, again.stdout
    assert "match the manifest" in again.stdout

    # tamper with the context binary: validate must notice from the hashes
    binary = next((out / "package").glob("*.bin"))
    data = bytearray(binary.read_bytes())
    data[len(data) // 2] ^= 0xFF
    binary.write_bytes(bytes(data))
    tampered = aipc("validate", str(folder), "--out", str(out))
    assert tampered.returncode == 1 and "changed" in tampered.stdout

    strict = write_model(tmp_path / "s", {"validation": {"samples": 1, "outputs": {"y": {"max_abs_max": 0.0}}}})
    failed = aipc("deploy", str(strict), "--out", str(tmp_path / "so"), "--no-repair")
    assert failed.returncode == 1
    manifest = json.loads((tmp_path / "so" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["stages"][-1]["stage"] == "validate"
    assert manifest["stages"][-1]["failure"]["kind"] == "accuracy"
