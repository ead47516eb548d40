"""Build a stand-in QAIRT SDK tree (and put the stand-in adb on PATH) for tests.

Layout as documented (shared/knowledge/qairt.md §1.1, §1.7): `sdk.yaml`, `bin/<target>/<tool>`,
`lib/<target>/lib*.so`, `lib/hexagon-v<NN>/unsigned/lib*Skel.so`. The tools are small shell
wrappers that call `qairt_tool.py` with this interpreter; the libraries are empty marker files.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSION = "2.39.0.250926"
HOST = "x86_64-linux-clang"
HOST_TOOLS = ("qairt-converter", "qairt-quantizer", "qnn-context-binary-generator", "qnn-net-run",
              "qnn-profile-viewer", "snpe-onnx-to-dlc", "snpe-dlc-quant", "snpe-dlc-graph-prepare", "snpe-net-run",
              "snpe-diagview")
DEVICE_TOOLS = ("qnn-net-run", "snpe-net-run")
ARCHES = (68, 69, 73, 75, 79, 81)


def _script(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def make_sdk(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "sdk.yaml").write_text(f"name: qairt-standin\nversion: {VERSION}\n")
    tool = HERE / "qairt_tool.py"
    for t in HOST_TOOLS:
        _script(root / "bin" / HOST / t, f'#!/bin/sh\nexec "{sys.executable}" "{tool}" {t} "$@"\n')
    for t in DEVICE_TOOLS:
        _script(root / "bin" / "aarch64-android" / t, f'#!/bin/sh\nexec "{sys.executable}" "{tool}" {t}@android "$@"\n')
    for lib in ("libQnnHtp.so", "libQnnModelDlc.so", "libQnnHtpNetRunExtensions.so", "libQnnSystem.so"):
        (root / "lib" / HOST).mkdir(parents=True, exist_ok=True)
        (root / "lib" / HOST / lib).write_bytes(b"\x7fELF stand-in")
    dev = root / "lib" / "aarch64-android"
    dev.mkdir(parents=True, exist_ok=True)
    for lib in ("libQnnHtp.so", "libQnnSystem.so", "libQnnHtpPrepare.so", "libSNPE.so"):
        (dev / lib).write_bytes(b"\x7fELF stand-in")
    for v in ARCHES:
        (dev / f"libQnnHtpV{v}Stub.so").write_bytes(b"\x7fELF stand-in")
        (dev / f"libSnpeHtpV{v}Stub.so").write_bytes(b"\x7fELF stand-in")
        skel = root / "lib" / f"hexagon-v{v}" / "unsigned"
        skel.mkdir(parents=True, exist_ok=True)
        (skel / f"libQnnHtpV{v}Skel.so").write_bytes(b"\x7fELF stand-in")
        (skel / f"libSnpeHtpV{v}Skel.so").write_bytes(b"\x7fELF stand-in")
    return root


def adb_on_path(bin_dir: Path) -> Path:
    """A folder holding `adb` (the stand-in) to put first on PATH."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    _script(bin_dir / "adb", f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "adb"}" "$@"\n')
    return bin_dir


def env_for(sdk: Path, log: Path) -> dict[str, str]:
    return {"QAIRT_SDK_ROOT": str(sdk), "AIPC_STANDIN_LOG": str(log)}


__all__ = ["make_sdk", "adb_on_path", "env_for", "VERSION", "HOST", "os"]
