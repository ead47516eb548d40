"""`aipc doctor`: what this machine can do, as one structured report (table, JSON, runner labels).

Each backend answers for itself (`available()`, `versions()`); the doctor adds what a lab engineer
needs beside that: where the QAIRT SDK came from and its version, the devices adb sees with their
SoC and HTP arch, package versions, whether the credentials the bot reads are present (never their
values), and the runner labels that follow from all of it — `runners/provision.sh` registers the
self-hosted runner with exactly those, so a workflow's `runs-on` can only land where it can run.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from bot import backends
from bot.backends.adb_device import AdbDeviceBackend, parse_devices
from bot.backends.qairt_sdk import DEFAULT_ROOTS, ENV_VARS, QNN_TOOLS, SNPE_TOOLS, find_sdk, host_target
from bot.targets import SOCS, soc_from_device

TITLES = {"ort-qnn": "HTP simulator", "qairt-sdk": "QAIRT SDK", "adb": "device"}
PACKAGES = ("aipc-bot", "onnxruntime", "onnxruntime-qnn", "torch", "onnx")
GITHUB_TOKEN_VARS = ("GITHUB_TOKEN", "GH_TOKEN")
LLM_KEY_VARS = ("AIPC_LLM_API_KEY", "OPENAI_API_KEY")
DEVICE_TMP = "/data/local/tmp"
MIN_FREE_MB = int(os.environ.get("AIPC_MIN_DEVICE_FREE_MB", "1024"))  # binaries, libraries, inputs, outputs
ADB_TIMEOUT = 20.0
ARCH_LABELS = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass
class BackendStatus:
    name: str
    title: str
    available: bool
    reason: str  # what was found, or why it is not there
    versions: dict[str, str] = field(default_factory=dict)


@dataclass
class SdkInfo:
    found: bool
    root: str | None = None
    source: str | None = None  # the environment variable it came from, or the default install glob
    version: str | None = None  # from the SDK's sdk.yaml (else the folder name)
    host: str | None = None
    tools: dict[str, bool] = field(default_factory=dict)  # tool → present in bin/<host>/
    looked: list[str] = field(default_factory=list)


@dataclass
class DeviceInfo:
    serial: str
    state: str  # device, unauthorized, offline, …
    model: str = ""
    soc: str = ""  # what the device reports (getprop ro.soc.model)
    soc_name: str | None = None  # the matching entry of bot/targets.py
    soc_model_id: int | None = None
    htp_arch: str | None = None  # "v75"
    free_mb: int | None = None  # free space in /data/local/tmp
    healthy: bool = False
    selected: bool = False  # the device the adb backend would use
    problems: list[str] = field(default_factory=list)


@dataclass
class DoctorReport:
    backends: list[BackendStatus]
    sdk: SdkInfo
    adb: str | None  # path of adb, if found
    devices: list[DeviceInfo]
    htp_arch: str | None  # of the selected healthy device
    python: str
    packages: dict[str, str]
    github_token: str  # "present" | "absent" — never the value
    llm_key: str  # "present" | "absent" — never the value
    credential_sources: dict[str, str]  # which variable holds each present credential (names only)
    labels: list[str]

    @property
    def ok(self) -> bool:
        """At least one backend can deploy here."""
        return any(b.available for b in self.backends)

    def backend(self, name: str) -> BackendStatus:
        return next(b for b in self.backends if b.name == name)

    def to_dict(self) -> dict:
        return {"ok": self.ok, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


# ── SDK ────────────────────────────────────────────────────────────────────────────────────────
def sdk_info() -> tuple[SdkInfo, str]:
    """The SDK found the way the qairt-sdk backend finds it, and a plain reason when there is none."""
    sdk, looked = find_sdk()
    if sdk is None:
        set_vars = [v for v in ENV_VARS if os.environ.get(v)]
        if set_vars:
            why = f"{'; '.join(looked)}: no bin/{host_target()}/ there (not a QAIRT SDK root)"
        else:
            why = f"QAIRT_SDK_ROOT / QNN_SDK_ROOT not set, and no SDK in {DEFAULT_ROOTS}"
        return SdkInfo(found=False, looked=looked), why
    source = next((v for v in ENV_VARS if os.environ.get(v) and Path(os.environ[v]) == sdk.root), DEFAULT_ROOTS)
    tools = {t: sdk.bin(t).is_file() for t in QNN_TOOLS + SNPE_TOOLS}
    return SdkInfo(True, str(sdk.root), source, sdk.version(), sdk.host, tools, looked), ""


# ── devices ────────────────────────────────────────────────────────────────────────────────────
def _adb(adb: str, *args: str) -> str:
    proc = subprocess.run([adb, *args], capture_output=True, text=True, errors="replace", timeout=ADB_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr or proc.stdout).strip() or f"exit {proc.returncode}")
    return proc.stdout.replace("\r", "")


def free_mb(df_text: str) -> int | None:
    """Free MB from `df -k <dir>` (toybox and GNU both end a row with Available, Use%, mount point)."""
    lines = [ln for ln in df_text.splitlines() if ln.strip()]
    if len(lines) < 2:
        return None
    tokens = " ".join(lines[1:]).split()
    try:
        return int(tokens[-3]) // 1024
    except (IndexError, ValueError):
        return None


def examine_device(adb: str, serial: str, state: str) -> DeviceInfo:
    dev = DeviceInfo(serial, state)
    if state != "device":
        hint = {"unauthorized": "accept the USB debugging prompt on the device",
                "offline": "replug it, or `adb kill-server`"}.get(state, "")
        dev.problems.append(f"state {state}" + (f" ({hint})" if hint else ""))
        return dev
    try:
        dev.soc = _adb(adb, "-s", serial, "shell", "getprop ro.soc.model").strip()
        dev.model = _adb(adb, "-s", serial, "shell", "getprop ro.product.model").strip()
        dev.free_mb = free_mb(_adb(adb, "-s", serial, "shell", f"df -k {DEVICE_TMP}"))
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        dev.problems.append(f"adb shell failed: {e}")
        return dev
    soc = soc_from_device(dev.soc)
    if soc is None:
        dev.problems.append(f"SoC {dev.soc or '(ro.soc.model empty)'} is not in bot/targets.py "
                            f"(known: {', '.join(SOCS)})")
    else:
        dev.soc_name, dev.soc_model_id, dev.htp_arch = soc.name, soc.soc_model, f"v{soc.htp_arch}"
    if dev.free_mb is not None and dev.free_mb < MIN_FREE_MB:
        dev.problems.append(f"only {dev.free_mb} MB free in {DEVICE_TMP} (need {MIN_FREE_MB})")
    dev.healthy = not dev.problems
    return dev


def devices(adb: str | None) -> tuple[list[DeviceInfo], str]:
    """Every device adb lists, examined; and the reason when adb itself cannot be asked."""
    if adb is None:
        return [], "adb not found on PATH (install Android platform-tools or set ADB)"
    try:
        listed = parse_devices(_adb(adb, "devices"))
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        return [], f"adb devices failed: {e}"
    return [examine_device(adb, s, st) for s, st in listed.items()], ""


# ── backends ───────────────────────────────────────────────────────────────────────────────────
def backend_status(name: str) -> BackendStatus:
    backend = backends.base._REGISTRY[name]()
    try:
        ok, why = backend.available()
    except Exception as e:  # a backend that cannot even say is not available, and says why
        ok, why = False, f"{type(e).__name__}: {e}"
    versions: dict[str, str] = {}
    if ok:
        try:
            versions = {k: str(v) for k, v in backend.versions().items()}
        except Exception as e:  # there but cannot say its versions: still worth listing
            versions = {"error": f"versions unavailable: {e}"}
    return BackendStatus(name, TITLES.get(name, name), ok, why, versions)


def _package_versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def _credential(names: tuple[str, ...]) -> str | None:
    return next((n for n in names if os.environ.get(n)), None)


# ── labels ─────────────────────────────────────────────────────────────────────────────────────
def _label(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-")


def derive_labels(report: DoctorReport) -> list[str]:
    """Runner labels: what a workflow may ask for with `runs-on` and find here."""
    labels = ["self-hosted", _label(platform.system()) or "linux",
              ARCH_LABELS.get(platform.machine().lower(), _label(platform.machine()))]
    if report.backend("ort-qnn").available:
        labels.append("htp-sim")
    if report.backend("qairt-sdk").available and report.sdk.version:
        v = report.sdk.version
        labels += ["qairt", _label(f"qairt-{v}")]
        short = ".".join(v.split(".")[:2])
        if short != v:
            labels.append(_label(f"qairt-{short}"))
    dev = next((d for d in report.devices if d.selected and d.healthy), None)
    if report.backend("adb").available and dev is not None:
        labels += ["device", _label(f"soc-{dev.soc_name}"), _label(f"htp-{dev.htp_arch}")]
    return list(dict.fromkeys(labels))


# ── the report ─────────────────────────────────────────────────────────────────────────────────
def examine() -> DoctorReport:
    sdk, sdk_why = sdk_info()
    adb_path = AdbDeviceBackend.adb_path()
    devs, adb_why = devices(adb_path)
    selected, select_why = AdbDeviceBackend().health() if adb_path else (None, adb_why)
    for d in devs:
        d.selected = d.serial == selected
    statuses = []
    for name in backends.names():
        st = backend_status(name)
        if name == "qairt-sdk" and not st.available and not sdk.found:
            st.reason = sdk_why
        if name == "adb" and not st.available:
            why = [adb_why or select_why] if (adb_why or select_why) else []
            if not sdk.found:
                why.append("needs the QAIRT SDK on the host to build what it pushes (not found)")
            st.reason = "; ".join(why) or st.reason
        statuses.append(st)
    chosen = next((d for d in devs if d.selected and d.healthy), None)
    if chosen is not None:
        adb_status = next(s for s in statuses if s.name == "adb")
        if adb_status.available:
            adb_status.versions.update({"device_soc": chosen.soc_name or "", "htp_arch": chosen.htp_arch or ""})
    gh, llm = _credential(GITHUB_TOKEN_VARS), _credential(LLM_KEY_VARS)
    report = DoctorReport(
        backends=statuses, sdk=sdk, adb=adb_path, devices=devs,
        htp_arch=chosen.htp_arch if chosen else None, python=platform.python_version(),
        packages=_package_versions(), github_token="present" if gh else "absent",
        llm_key="present" if llm else "absent",
        credential_sources={k: v for k, v in (("github_token", gh), ("llm_key", llm)) if v}, labels=[])
    report.labels = derive_labels(report)
    return report


def summary(report: DoctorReport) -> list[str]:
    """One plain sentence per backend: what a person reads first."""
    lines = []
    for b in report.backends:
        if b.available:
            lines.append(f"The {b.title} backend ({b.name}) is available: {b.reason}.")
        else:
            lines.append(f"The {b.title} backend ({b.name}) is not available: {b.reason}.")
    return lines


def render(report: DoctorReport):
    """The rich tables `aipc doctor` prints."""
    from rich.console import Group  # deferred: rich only when a table is rendered
    from rich.markup import escape  # deferred: rich only when a table is rendered
    from rich.table import Table  # deferred: rich only when a table is rendered

    t = Table(title="backends", title_justify="left", show_lines=True)
    t.add_column("backend", no_wrap=True)
    t.add_column("status", no_wrap=True)
    t.add_column("found / why not", overflow="fold")
    for b in report.backends:
        versions = ", ".join(f"{k} {v}" for k, v in b.versions.items())
        t.add_row(f"{b.name}\n[dim]{b.title}[/dim]",
                  "[green]available[/green]" if b.available else "[red]not available[/red]",
                  escape(b.reason) + (f"\n[dim]{escape(versions)}[/dim]" if versions else ""))
    m = Table(title="machine", title_justify="left", show_header=False)
    m.add_column("what")
    m.add_column("value", overflow="fold")
    s = report.sdk
    m.add_row("QAIRT SDK", escape(f"{s.version} at {s.root} (from {s.source})") if s.found else "not found")
    if s.found:
        missing = [k for k, v in s.tools.items() if not v]
        m.add_row("SDK tools", "all present" if not missing else f"missing: {', '.join(missing)}")
    m.add_row("adb", escape(report.adb or "not found on PATH"))
    m.add_row("HTP arch", report.htp_arch or "no device (the simulator prepares for the target's SoC)")
    m.add_row("python", report.python)
    for k, v in report.packages.items():
        m.add_row(k, v)
    m.add_row("github token", report.github_token)
    m.add_row("LLM key", report.llm_key)
    m.add_row("runner labels", ",".join(report.labels))
    parts = [t, m]
    if report.devices:
        d = Table(title="devices", title_justify="left")
        for col in ("serial", "state", "model", "SoC", "soc id", "HTP", "free MB", "health"):
            d.add_column(col, overflow="fold")
        for x in report.devices:
            health = "ok" if x.healthy else "; ".join(x.problems)
            d.add_row(escape(x.serial) + (" *" if x.selected else ""), x.state, escape(x.model),
                      escape(x.soc_name or x.soc), str(x.soc_model_id or ""), x.htp_arch or "",
                      "" if x.free_mb is None else str(x.free_mb), escape(health))
        parts.append(d)
    return Group(*parts)


def diagnose() -> list[tuple[str, bool, str]]:
    """(backend, available, what was found or why not, with versions): the short form."""
    rows = []
    for b in examine().backends:
        detail = b.reason + ("  " + ", ".join(f"{k} {v}" for k, v in b.versions.items()) if b.versions else "")
        rows.append((b.name, b.available, detail))
    return rows
