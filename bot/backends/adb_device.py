"""An Android device over adb: compile on the host with the QAIRT SDK, run on the device's HTP.

Composes `QairtSdkBackend` (probe and compile are the SDK's, unchanged) and replaces only `run`:
push the context binary (or SNPE DLC), `qnn-net-run` / `snpe-net-run` for aarch64-android, the
runtime libraries (libQnnHtp.so, libQnnSystem.so, libQnnHtpV<NN>Stub.so) and the DSP skel
(lib/hexagon-v<NN>/unsigned/libQnnHtpV<NN>Skel.so) and the raw inputs to /data/local/tmp/aipc/<model>,
run with LD_LIBRARY_PATH and a quoted, `;`-separated ADSP_LIBRARY_PATH that includes the system DSP
paths, pull the Result_N outputs and profiling log back, and remove the folder again.

The device is `ANDROID_SERIAL` if set, else the only one `adb devices` lists as `device`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from bot.backends import qairt_io as Q
from bot.backends.base import Compiled, CompileRequest, Placement, RunResult, register
from bot.backends.qairt_sdk import QairtSdkBackend, load_io
from bot.backends.sdk_errors import tool_failure
from bot.errors import BadInput
from bot.records import FailureKind, StageFailed
from bot.spec.schema import TargetSpec
from bot.targets import SOCS

DEVICE_ROOT = "/data/local/tmp/aipc"
SYSTEM_DSP_PATHS = ("/system/lib/rfsa/adsp", "/system/vendor/lib/rfsa/adsp", "/dsp")
ANDROID = "aarch64-android"
EXIT_MARK = "AIPC_EXIT="
TIMEOUT = float(os.environ.get("AIPC_ADB_TIMEOUT", "1800"))


def runtime_files(runtime: str, arch: int) -> tuple[str, list[tuple[str, str | None]]]:
    """The net-run binary and (library, hexagon-skel-or-None) files a device run needs, per runtime."""
    if runtime == "snpe":
        return "snpe-net-run", [("libSNPE.so", None), (f"libSnpeHtpV{arch}Stub.so", None),
                                (f"libSnpeHtpV{arch}Skel.so", "skel")]
    return "qnn-net-run", [("libQnnHtp.so", None), ("libQnnSystem.so", None), (f"libQnnHtpV{arch}Stub.so", None),
                           (f"libQnnHtpV{arch}Skel.so", "skel")]


def parse_devices(text: str) -> dict[str, str]:
    """`adb devices` → {serial: state} (device, unauthorized, offline, …)."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith(("List of devices", "*")):
            out[parts[0]] = parts[1]
    return out


def device_command(folder: str, net_run: str, args: list[str]) -> str:
    """The one shell line the device runs; ADSP_LIBRARY_PATH is `;`-separated, so it is quoted."""
    adsp = ";".join((folder, *SYSTEM_DSP_PATHS))
    return (f"cd {shlex.quote(folder)} && export LD_LIBRARY_PATH={shlex.quote(folder)}:$LD_LIBRARY_PATH"
            f" && export ADSP_LIBRARY_PATH=\"{adsp}\" && chmod 755 ./{net_run}"
            f" && ./{net_run} {' '.join(shlex.quote(a) for a in args)} 2>&1; echo {EXIT_MARK}$?")


@register("adb")
class AdbDeviceBackend:
    name = "adb"

    def __init__(self, sdk_backend: QairtSdkBackend | None = None):
        self.host = sdk_backend or QairtSdkBackend()
        self._serial: str | None = None

    # ── adb ────────────────────────────────────────────────────────────────────────────────────
    @staticmethod
    def adb_path() -> str | None:
        return os.environ.get("ADB") or shutil.which("adb")

    def _adb(self, *args: str, stage: str = "validate", serial: bool = True, check: bool = True,
             what: str | None = None) -> subprocess.CompletedProcess:
        exe = self.adb_path()
        if exe is None:
            raise StageFailed(tool_failure(stage, "adb", "adb not found on PATH (set ADB or install platform-tools)", "",
                                           kind=FailureKind.TOOL_ERROR))
        cmd = [exe, *(["-s", self.serial()] if serial else []), *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise StageFailed(tool_failure(stage, what or f"adb {args[0]}", f"timed out after {TIMEOUT:.0f} s", "",
                                           command=cmd, kind=FailureKind.TOOL_ERROR)) from None
        if check and proc.returncode != 0:
            text = (proc.stderr or "") + (proc.stdout or "")
            raise StageFailed(tool_failure(stage, what or f"adb {args[0]}", f"exited with status {proc.returncode}",
                                           text, command=cmd, returncode=proc.returncode,
                                           kind=FailureKind.TOOL_ERROR))
        return proc

    def devices(self) -> dict[str, str]:
        return parse_devices(self._adb("devices", serial=False).stdout)

    def health(self) -> tuple[str | None, str]:
        """(serial, why-not): the device to use, or the reason there is none."""
        if self.adb_path() is None:
            return None, "adb: not found on PATH (install Android platform-tools or set ADB)"
        try:
            devs = self.devices()
        except StageFailed as e:
            return None, f"adb devices failed: {e.failure.log.strip() or e.failure.message}"
        want = os.environ.get("ANDROID_SERIAL")
        if want:
            if want not in devs:
                return None, f"adb: device {want} (ANDROID_SERIAL) is not attached; attached: {devs or 'none'}"
            if devs[want] != "device":
                return None, f"adb: device {want} is {devs[want]}"
            return want, ""
        ready = [s for s, st in devs.items() if st == "device"]
        if not ready:
            states = ", ".join(f"{s} {st}" for s, st in devs.items())
            return None, "adb: no device attached" + (f" (only: {states})" if states else "")
        if len(ready) > 1:
            return None, f"adb: {len(ready)} devices attached ({', '.join(ready)}); set ANDROID_SERIAL to pick one"
        return ready[0], ""

    def serial(self) -> str:
        if self._serial is None:
            serial, why = self.health()
            if serial is None:
                raise BadInput(why, where="target.engine", hint="run `aipc doctor`")
            self._serial = serial
        return self._serial

    def shell(self, line: str, stage: str = "validate", what: str = "adb shell") -> str:
        proc = self._adb("shell", line, stage=stage, what=what)
        return (proc.stdout or "") + (proc.stderr or "")

    # ── Backend ────────────────────────────────────────────────────────────────────────────────
    def available(self) -> tuple[bool, str]:
        ok, why = self.host.available()
        if not ok:
            return False, f"{why} (the adb backend compiles with the host SDK and pushes its device binaries)"
        serial, why = self.health()
        if serial is None:
            return False, why
        self._serial = serial
        return True, f"device {serial} over adb; host {self.host.available()[1]}"

    def versions(self) -> dict[str, str]:
        v = dict(self.host.versions())
        try:
            v["device"] = self.shell("getprop ro.product.model", what="adb getprop").strip() or self.serial()
            soc = self.shell("getprop ro.soc.model", what="adb getprop").strip()
            if soc:
                v["device_soc"] = soc
        except StageFailed:
            v["device"] = self.serial()
        return v

    def probe(self, model: Path, target: TargetSpec) -> Placement:
        return self.host.probe(model, target)

    def compile(self, req: CompileRequest) -> Compiled:
        return self.host.compile(req)

    def run(self, compiled: Compiled, feeds: list[dict[str, np.ndarray]], target: TargetSpec) -> RunResult:
        sdk, io = self.host.sdk, load_io(compiled)
        arch = SOCS[target.soc].htp_arch
        net_run, libs = runtime_files(target.runtime, arch)
        model = _safe(io.meta.get("model") or compiled.entry.parent.name or "model")
        folder = f"{DEVICE_ROOT}/{model}"
        pushes: list[tuple[Path, str]] = [(compiled.entry, compiled.entry.name), (sdk.bin(net_run, ANDROID), net_run)]
        for lib, kind in libs:
            pushes.append((sdk.skel(lib, arch) if kind == "skel" else sdk.lib(lib, ANDROID), lib))
        missing = [str(p) for p, _ in pushes if not p.is_file()]
        if missing:
            raise StageFailed(tool_failure("validate", "adb push", f"the SDK lacks device files for HTP v{arch}: "
                                           f"{', '.join(missing)}", "", kind=FailureKind.TOOL_ERROR))
        with tempfile.TemporaryDirectory(prefix="aipc-adb-") as tmp:
            local = Path(tmp)
            Q.write_inputs(feeds, io, local / "inputs", path_prefix="inputs")  # relative to the cd
            pushes += [(p, f"inputs/{p.name}") for p in sorted((local / "inputs").iterdir())]
            self.shell(f"rm -rf {shlex.quote(folder)} && mkdir -p {shlex.quote(folder)}/inputs", what="adb shell mkdir")
            try:
                for src, rel in pushes:
                    self._adb("push", str(src), f"{folder}/{rel}", what="adb push")
                if target.runtime == "snpe":
                    args = ["--container", compiled.entry.name, "--input_list", "inputs/input_list.txt",
                            "--output_dir", "output", "--use_dsp", "--profiling_level", "basic"]
                else:
                    args = ["--retrieve_context", compiled.entry.name, "--backend", "libQnnHtp.so",
                            "--input_list", "inputs/input_list.txt", "--output_dir", "output",
                            "--profiling_level", "basic"]
                t0 = time.perf_counter()
                text = self.shell(device_command(folder, net_run, args), what=net_run)
                wall = time.perf_counter() - t0
                body, code = _exit_code(text)
                if code != 0:
                    raise StageFailed(tool_failure("validate", net_run,
                                                   f"exited with status {code} on device {self.serial()}", body,
                                                   returncode=code))
                self._adb("pull", f"{folder}/output", str(local), what="adb pull")
            finally:
                self._adb("shell", f"rm -rf {shlex.quote(folder)}", check=False, what="adb shell rm")
            out = local / "output"
            outs = Q.read_outputs(out, io, len(feeds), tool=net_run, log=body)
            secs = Q.per_inference_seconds(self.host.profile_us(out, local, target.runtime), len(feeds), wall)
        return RunResult(outs, secs)


def _exit_code(text: str) -> tuple[str, int]:
    """The remote command's exit status from the marker it echoes (adb shell's own status is unreliable)."""
    lines = text.rstrip("\n").splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith(EXIT_MARK):
            try:
                return "\n".join(lines[:i]), int(lines[i][len(EXIT_MARK):].strip())
            except ValueError:
                break
    return text, 255


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "model"
