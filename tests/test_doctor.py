"""`aipc doctor` through the real CLI: on a bare machine (no SDK, no adb) it says plainly that the HTP
simulator is available and the SDK and device backends are not, and why; with the stand-in SDK and
adb (tests/standins) it reports the SDK version, the device's SoC and HTP arch, and labels from them.
Credentials are reported present/absent and their values never appear in any output.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "standins"))
import sdk_tree  # noqa: E402

from bot.cli import app  # noqa: E402
from bot.doctor import free_mb  # noqa: E402
from bot.targets import soc_from_device  # noqa: E402

CLEARED = ("QAIRT_SDK_ROOT", "QNN_SDK_ROOT", "SNPE_ROOT", "ADB", "ANDROID_SERIAL", "AIPC_STANDIN_DEVICES",
           "GITHUB_TOKEN", "GH_TOKEN", "AIPC_LLM_API_KEY", "OPENAI_API_KEY")


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def bare(tmp_path, monkeypatch):
    """No SDK variables, no adb on PATH, no credentials."""
    if glob.glob("/opt/qcom/aistack/qairt/*"):
        pytest.skip("this machine has a QAIRT SDK in the default location: not a bare machine")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    for k in CLEARED:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("PATH", str(empty))
    return empty


@pytest.fixture
def standins(tmp_path, monkeypatch):
    """The stand-in SDK in QAIRT_SDK_ROOT and the stand-in adb (one SM8650 device) first on PATH."""
    root = sdk_tree.make_sdk(tmp_path / "qairt" / sdk_tree.VERSION)
    dev = tmp_path / "device_tmp"
    dev.mkdir()
    bindir = sdk_tree.adb_on_path(tmp_path / "hostbin")
    for k in CLEARED:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("QAIRT_SDK_ROOT", str(root))
    monkeypatch.setenv("AIPC_STANDIN_DEVICE_ROOT", str(dev))
    return root


def cli(*args: str):
    return CliRunner().invoke(app, ["doctor", *args])


def cli_process(*args: str) -> subprocess.CompletedProcess:
    """`aipc doctor` as its own process: its stdout must be nothing but what was asked for."""
    return subprocess.run([sys.executable, "-m", "bot.cli", "doctor", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)


def test_bare_machine_says_simulator_yes_sdk_and_device_no_with_reasons(bare):
    r = cli()
    assert r.exit_code == 0, r.output
    text = flat(r.output)
    assert "The HTP simulator backend (ort-qnn) is available" in text
    assert ("The QAIRT SDK backend (qairt-sdk) is not available: QAIRT_SDK_ROOT / QNN_SDK_ROOT not set" in text)
    assert "The device backend (adb) is not available: adb not found on PATH" in text
    assert "needs the QAIRT SDK on the host" in text


def test_bare_machine_json_and_labels_say_the_same(bare):
    p = cli_process("--json")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    by = {b["name"]: b for b in report["backends"]}
    assert by["ort-qnn"]["available"] and by["ort-qnn"]["versions"]["onnxruntime-qnn"]
    assert not by["qairt-sdk"]["available"] and "QAIRT_SDK_ROOT / QNN_SDK_ROOT not set" in by["qairt-sdk"]["reason"]
    assert not by["adb"]["available"] and "adb not found on PATH" in by["adb"]["reason"]
    assert report["ok"] and report["sdk"]["found"] is False and report["devices"] == [] and report["adb"] is None
    assert report["htp_arch"] is None and report["github_token"] == "absent" and report["llm_key"] == "absent"
    assert report["packages"]["onnxruntime-qnn"] != "not installed" and report["python"].count(".") == 2
    labels = cli_process("--labels")
    assert labels.returncode == 0
    got = labels.stdout.strip().split(",")
    assert got == report["labels"]
    assert got[:2] == ["self-hosted", "linux"] and "htp-sim" in got
    assert not any(x.startswith(("qairt", "device", "soc-", "htp-v")) for x in got)


def test_standins_report_sdk_version_device_soc_and_htp_arch(standins):
    r = cli("--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    sdk = report["sdk"]
    assert sdk["found"] and sdk["version"] == sdk_tree.VERSION and sdk["source"] == "QAIRT_SDK_ROOT"
    assert sdk["root"] == str(standins) and sdk["tools"]["qnn-context-binary-generator"]
    (dev,) = report["devices"]
    assert (dev["serial"], dev["state"], dev["soc_name"], dev["soc_model_id"], dev["htp_arch"]) == \
        ("standin0", "device", "SM8650", 57, "v75")
    assert dev["healthy"] and dev["selected"] and dev["free_mb"] > 0 and dev["model"] == "Stand-in Snapdragon Phone"
    assert report["htp_arch"] == "v75"
    assert all(b["available"] for b in report["backends"])
    assert {"htp-sim", "qairt", f"qairt-{sdk_tree.VERSION}", "qairt-2.39", "device", "soc-sm8650",
            "htp-v75"} <= set(report["labels"])
    text = flat(cli().output)
    assert sdk_tree.VERSION in text and "v75" in text and "SM8650" in text
    assert "The device backend (adb) is available: device standin0" in text
    assert cli("--labels").output.strip() == ",".join(report["labels"])


def test_unauthorized_device_is_listed_with_why_and_gets_no_device_labels(standins, monkeypatch):
    monkeypatch.setenv("AIPC_STANDIN_DEVICES", "standin0:unauthorized")
    report = json.loads(cli("--json").output)
    (dev,) = report["devices"]
    assert not dev["healthy"] and "unauthorized" in dev["problems"][0] and "USB debugging" in dev["problems"][0]
    adb = next(b for b in report["backends"] if b["name"] == "adb")
    assert not adb["available"] and "no device attached" in adb["reason"]
    assert "qairt" in report["labels"] and "device" not in report["labels"]
    assert not any(x.startswith(("soc-", "htp-v")) for x in report["labels"])


def test_two_devices_without_android_serial_say_which_to_pick(standins, monkeypatch):
    monkeypatch.setenv("AIPC_STANDIN_DEVICES", "a1:device,b2:device")
    report = json.loads(cli("--json").output)
    adb = next(b for b in report["backends"] if b["name"] == "adb")
    assert not adb["available"] and "ANDROID_SERIAL" in adb["reason"]
    assert [d["healthy"] for d in report["devices"]] == [True, True]
    assert not any(d["selected"] for d in report["devices"])
    assert "device" not in report["labels"]
    monkeypatch.setenv("ANDROID_SERIAL", "b2")
    report = json.loads(cli("--json").output)
    assert [d["serial"] for d in report["devices"] if d["selected"]] == ["b2"] and "device" in report["labels"]


def test_sdk_variable_pointing_nowhere_is_named(bare, tmp_path, monkeypatch):
    monkeypatch.setenv("QNN_SDK_ROOT", str(tmp_path / "not-an-sdk"))
    report = json.loads(cli("--json").output)
    sdk = next(b for b in report["backends"] if b["name"] == "qairt-sdk")
    assert not sdk["available"] and f"QNN_SDK_ROOT={tmp_path / 'not-an-sdk'}" in sdk["reason"]
    assert "not a QAIRT SDK root" in sdk["reason"]


def test_token_values_never_appear_only_their_presence(bare, monkeypatch):
    gh, llm = "ghp_doctorSecretValue0123456789", "sk-doctorSecretLLMKey987654"
    monkeypatch.setenv("GITHUB_TOKEN", gh)
    monkeypatch.setenv("OPENAI_API_KEY", llm)
    outputs = [cli().output, cli("--json").output, cli("--labels").output,
               cli_process("--json").stdout + cli_process().stdout + cli_process().stderr]
    for out in outputs:
        assert gh not in out and llm not in out
        assert "doctorSecret" not in out
    report = json.loads(outputs[1])
    assert report["github_token"] == "present" and report["llm_key"] == "present"
    assert report["credential_sources"] == {"github_token": "GITHUB_TOKEN", "llm_key": "OPENAI_API_KEY"}
    assert "github token │ present" in flat(outputs[0]) and "LLM key │ present" in flat(outputs[0])


def test_exit_1_when_no_backend_can_deploy(bare, monkeypatch):
    from bot.backends.ort_qnn import OrtQnnBackend

    monkeypatch.setattr(OrtQnnBackend, "available", lambda self: (False, "onnxruntime-qnn not importable: test"))
    r = cli()
    assert r.exit_code == 1
    assert "The HTP simulator backend (ort-qnn) is not available: onnxruntime-qnn not importable" in flat(r.output)
    assert "htp-sim" not in cli("--labels").output


def test_device_soc_and_free_space_parsing():
    assert soc_from_device("SM8650").htp_arch == 75
    assert soc_from_device(" sm8550\n").soc_model == 43
    assert soc_from_device("SA8295P").name == "SA8295"  # vendor suffix, same HTP
    assert soc_from_device("MT6989") is None and soc_from_device("") is None
    toybox = ("Filesystem       1K-blocks     Used Available Use% Mounted on\n"
              "/dev/block/dm-48 230000000 12000000 218000000   6% /data\n")
    assert free_mb(toybox) == 218000000 // 1024
    wrapped = "Filesystem 1K-blocks Used Available Use% Mounted on\n/dev/block/very/long/name\n 100 50 4096 50% /data\n"
    assert free_mb(wrapped) == 4
    assert free_mb("df: /data/local/tmp: Permission denied\n") is None
