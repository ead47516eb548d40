"""The adb device backend against a stand-in `adb` on PATH (tests/standins/adb): its device's
/data/local/tmp is a temp folder and `shell` runs there, so the pushed stand-in qnn-net-run really
executes. Verifies the push layout, the LD_LIBRARY_PATH / ADSP_LIBRARY_PATH contract, pulling
Result_N outputs, clean-up and device health — not a real phone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "standins"))
sys.path.insert(0, str(Path(__file__).parent))
import sdk_tree  # noqa: E402
from test_backend_qairt_sdk import _compile, calls, deploy, write_model  # noqa: E402

from bot import backends  # noqa: E402
from bot.backends.adb_device import AdbDeviceBackend, device_command, parse_devices  # noqa: E402
from bot.errors import BadInput  # noqa: E402
from bot.records import FailureKind, StageFailed  # noqa: E402
from bot.spec.schema import TargetSpec  # noqa: E402


@pytest.fixture
def device(tmp_path, monkeypatch):
    root = sdk_tree.make_sdk(tmp_path / "qairt" / sdk_tree.VERSION)
    log = tmp_path / "standin.jsonl"
    dev = tmp_path / "device_tmp"
    dev.mkdir()
    bindir = sdk_tree.adb_on_path(tmp_path / "hostbin")
    monkeypatch.setenv("PATH", f"{bindir}:{__import__('os').environ['PATH']}")
    for k, v in sdk_tree.env_for(root, log).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AIPC_STANDIN_DEVICE_ROOT", str(dev))
    for k in ("ANDROID_SERIAL", "ADB", "AIPC_STANDIN_DEVICES", "AIPC_STANDIN_FAIL", "QNN_SDK_ROOT", "SNPE_ROOT"):
        monkeypatch.delenv(k, raising=False)
    return root, log, dev


def test_pipeline_through_adb_passes_validation(device, tmp_path):
    root, log, dev = device
    out = deploy(write_model(tmp_path / "m", "adb"), tmp_path / "out")
    assert out.passed, out.failure
    val = out.result("validate")
    assert val.metrics["backend"] == "adb" and val.metrics["outputs"]["logits"]["cosine"] > 0.999
    (run,) = calls(log, "qnn-net-run")
    assert run["android"] is True and run["samples"] == 2
    adb = calls(log, "adb")
    pushed = {Path(c["args"][1]).name for c in adb if c["cmd"] == "push"}
    assert {"model.bin", "qnn-net-run", "libQnnHtp.so", "libQnnSystem.so", "libQnnHtpV75Stub.so",
            "libQnnHtpV75Skel.so", "input_list.txt"} <= pushed
    assert all(c["args"][1].startswith("/data/local/tmp/aipc/") for c in adb if c["cmd"] == "push")
    assert any(c["cmd"] == "pull" and c["args"][0].endswith("/output") for c in adb)
    assert adb[-1]["cmd"] == "shell" and adb[-1]["args"][0].startswith("rm -rf /data/local/tmp/aipc/")
    assert not any((dev / "aipc").iterdir())  # cleaned up


def test_device_command_quotes_adsp_path():
    line = device_command("/data/local/tmp/aipc/m", "qnn-net-run", ["--retrieve_context", "model.bin"])
    assert 'export ADSP_LIBRARY_PATH="/data/local/tmp/aipc/m;/system/lib/rfsa/adsp;/system/vendor/lib/rfsa/adsp;/dsp"' in line
    assert "export LD_LIBRARY_PATH=/data/local/tmp/aipc/m" in line and line.endswith("2>&1; echo AIPC_EXIT=$?")


def test_device_failure_keeps_its_text_and_cleans_up(device, tmp_path, monkeypatch):
    root, log, dev = device
    be, req = _compile(tmp_path, precision="fp16")
    adb = AdbDeviceBackend()
    c = adb.compile(req)
    monkeypatch.setenv("AIPC_STANDIN_FAIL", "qnn-net-run=exit")
    monkeypatch.setenv("AIPC_STANDIN_STDERR", "QnnDsp <E> Failed to finalize graph (id: 1) with err 1002")
    with pytest.raises(StageFailed) as e:
        adb.run(c, [{"x": np.ones((1, 2, 4, 4), np.float32)}], TargetSpec(precision="fp16"))
    f = e.value.failure
    assert f.kind == FailureKind.COMPILE_ERROR and "Failed to finalize graph" in f.log and f.details["returncode"] == 3
    assert not any((dev / "aipc").iterdir())


def test_wrong_skel_arch_fails_on_device(device, tmp_path):
    """A binary for v75 run with the libraries of another arch: the device says so, we keep its words."""
    root, log, dev = device
    be, req = _compile(tmp_path, precision="fp16")
    c = AdbDeviceBackend().compile(req)
    with pytest.raises(StageFailed) as e:
        AdbDeviceBackend().run(c, [{"x": np.ones((1, 2, 4, 4), np.float32)}], TargetSpec(soc="SM8750", precision="fp16"))
    assert "Failed to load skel libQnnHtpV75Skel.so" in e.value.failure.log


def test_no_device_is_a_clear_bad_input(device, monkeypatch):
    monkeypatch.setenv("AIPC_STANDIN_DEVICES", "")
    with pytest.raises(BadInput) as e:
        backends.for_target(TargetSpec(engine="adb"))
    assert "adb: no device attached" in str(e.value)
    monkeypatch.setenv("AIPC_STANDIN_DEVICES", "abc:unauthorized")
    assert "abc unauthorized" in AdbDeviceBackend().available()[1]
    monkeypatch.setenv("AIPC_STANDIN_DEVICES", "a:device,b:device")
    assert "set ANDROID_SERIAL" in AdbDeviceBackend().available()[1]
    monkeypatch.setenv("ANDROID_SERIAL", "b")
    assert AdbDeviceBackend().health() == ("b", "")


def test_parse_devices():
    text = "* daemon started successfully\nList of devices attached\nR58M\tdevice\nemulator-5554\toffline\n\n"
    assert parse_devices(text) == {"R58M": "device", "emulator-5554": "offline"}


def test_doctor_lists_device(device):
    from bot.doctor import diagnose

    rows = {n: (ok, why) for n, ok, why in diagnose()}
    assert rows["adb"][0] and "standin0" in rows["adb"][1]
    assert json.dumps(rows)
