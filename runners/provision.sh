#!/usr/bin/env bash
# Provision (or re-check) a self-hosted runner for the AIPC bot. Idempotent: run it again any time.
#   QAIRT_SDK_ROOT=/opt/qcom/aistack/qairt/2.39.0.250926 runners/provision.sh [--min-sdk 2.30] [--no-device]
# Checks the QAIRT SDK and its version, creates/updates the Python venv (torch pinned, bot editable),
# checks the device over adb, and ends with `aipc doctor`. Never registers the runner itself
# (see runners/README.md for the ephemeral registration step).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AIPC_VENV:-$REPO/.venv}"
MIN_SDK="2.30"
NEED_DEVICE=1
while [ $# -gt 0 ]; do
  case "$1" in
    --min-sdk) MIN_SDK="$2"; shift 2 ;;
    --no-device) NEED_DEVICE=0; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

say() { printf '%s\n' "$*"; }
fail() { printf 'provision: %s\n' "$*" >&2; exit 1; }

# 1. QAIRT SDK: the same search order as bot/backends/qairt_sdk.py
SDK="${QAIRT_SDK_ROOT:-${QNN_SDK_ROOT:-${SNPE_ROOT:-}}}"
if [ -z "$SDK" ]; then
  SDK="$(ls -d /opt/qcom/aistack/qairt/*/ 2>/dev/null | sort -V | tail -n1 || true)"
  SDK="${SDK%/}"
fi
[ -n "$SDK" ] && [ -d "$SDK/bin/x86_64-linux-clang" ] || \
  fail "QAIRT SDK not found: set QAIRT_SDK_ROOT (looked in QAIRT_SDK_ROOT, QNN_SDK_ROOT, SNPE_ROOT, /opt/qcom/aistack/qairt/*)"
VERSION="$(sed -n 's/^[[:space:]]*version[[:space:]]*:[[:space:]]*//p' "$SDK/sdk.yaml" 2>/dev/null | head -n1)"
[ -n "$VERSION" ] || VERSION="$(basename "$SDK")"
if [ "$(printf '%s\n%s\n' "$MIN_SDK" "$VERSION" | sort -V | head -n1)" != "$MIN_SDK" ]; then
  fail "QAIRT SDK $VERSION at $SDK is older than $MIN_SDK"
fi
for tool in qairt-converter qairt-quantizer qnn-context-binary-generator qnn-net-run; do
  [ -x "$SDK/bin/x86_64-linux-clang/$tool" ] || fail "$SDK/bin/x86_64-linux-clang/$tool missing"
done
say "✓ QAIRT SDK $VERSION at $SDK"

# 2. Python env (re-running only re-installs what changed)
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || fail "$PY is older than 3.11 (onnxruntime-qnn needs ≥ 3.11)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet torch==2.13.0 -e "$REPO"
say "✓ venv $VENV ($("$VENV/bin/python" --version))"

# 3. Device health
if [ "$NEED_DEVICE" = 1 ]; then
  command -v adb >/dev/null || fail "adb not on PATH (install Android platform-tools)"
  DEVICES="$(adb devices | awk 'NR>1 && $2=="device" {print $1}')"
  [ -n "$DEVICES" ] || fail "adb: no device attached ($(adb devices | awk 'NR>1 && NF {print $1" "$2}' | tr '\n' ' '))"
  for d in $DEVICES; do
    say "✓ device $d: $(adb -s "$d" shell getprop ro.product.model | tr -d '\r') ($(adb -s "$d" shell getprop ro.soc.model | tr -d '\r'))"
  done
fi

# 4. What the bot itself sees
QAIRT_SDK_ROOT="$SDK" "$VENV/bin/aipc" doctor
