#!/usr/bin/env bash
# Provision (or re-check) a Linux self-hosted GitHub Actions runner for the AIPC bot. Idempotent:
# run it again after an SDK upgrade, a new device or a new checkout; it changes only what differs.
#
#   sudo runners/provision.sh --sdk /opt/qcom/aistack/qairt/2.39.0.250926 \
#        --url https://github.com/OWNER/REPO --token <registration token> [--admin-token-file FILE]
#   runners/provision.sh --dry-run ...     # run the checks, print every change instead of making it
#
# Steps: 1 QAIRT SDK (root, version, qnn-context-binary-generator) · 2 runner user · 3 Python venv
# (torch==2.13.0 -e <this checkout>) · 4 `aipc doctor --json`: SDK, devices (state, SoC, HTP arch,
# free space) · 5 labels from `aipc doctor --labels` · 6 env file · 7 ephemeral registration
# (config.sh --ephemeral, or a JIT config) · 8 systemd unit aipc-runner.service and its wrapper.
# See runners/README.md for what each step needs and why.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$REPO/runners"
SDK="${QAIRT_SDK_ROOT:-${QNN_SDK_ROOT:-${SNPE_ROOT:-}}}"
RUNNER_DIR="${AIPC_RUNNER_DIR:-/var/lib/aipc-runner/actions-runner}"
URL="${AIPC_RUNNER_URL:-}"
TOKEN="${AIPC_RUNNER_TOKEN:-}"
JIT_FILE="${AIPC_RUNNER_JITCONFIG:-}"
ADMIN_TOKEN_FILE=""
NAME="${AIPC_RUNNER_NAME:-$(hostname)-aipc}"
RUNNER_USER="${AIPC_RUNNER_USER:-aipc-runner}"
VENV="${AIPC_VENV:-/opt/aipc/venv}"
PYTHON="${PYTHON:-python3}"
MIN_SDK="2.30"
NEED_DEVICE=1
SERVICE=1
DRY=0
ETC=/etc/aipc-runner
LIBEXEC=/usr/local/lib/aipc-runner
UNIT=/etc/systemd/system/aipc-runner.service
STATE=/var/lib/aipc-runner

usage() {
  cat <<EOF
usage: provision.sh [options]
  --sdk DIR               QAIRT SDK root (else QAIRT_SDK_ROOT, QNN_SDK_ROOT, SNPE_ROOT, newest /opt/qcom/aistack/qairt/*)
  --min-sdk VERSION       oldest SDK accepted (default $MIN_SDK)
  --url URL               repository (https://github.com/OWNER/REPO) or organisation URL   [AIPC_RUNNER_URL]
  --token TOKEN           registration token for config.sh --ephemeral (valid 1 h)          [AIPC_RUNNER_TOKEN]
  --jit-config FILE       an encoded JIT runner config to start with instead                  [AIPC_RUNNER_JITCONFIG]
  --admin-token-file FILE token the service uses to mint a JIT config for every next job (installed root-only)
  --name NAME             runner name (default \$(hostname)-aipc)                            [AIPC_RUNNER_NAME]
  --runner-dir DIR        where the actions/runner release is unpacked (default $RUNNER_DIR) [AIPC_RUNNER_DIR]
  --venv DIR              the bot's Python venv (default $VENV)                               [AIPC_VENV]
  --user USER             the unprivileged user jobs run as (default $RUNNER_USER)
  --no-device             an SDK-only runner: do not require a healthy adb device
  --no-service            check, install and register, but do not install the systemd unit
  --dry-run               run the checks; print every change (venv, user, files, config.sh, systemctl) instead
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --sdk) SDK="$2"; shift 2 ;;
    --min-sdk) MIN_SDK="$2"; shift 2 ;;
    --url) URL="$2"; shift 2 ;;
    --token) TOKEN="$2"; shift 2 ;;
    --jit-config) JIT_FILE="$2"; shift 2 ;;
    --admin-token-file) ADMIN_TOKEN_FILE="$2"; shift 2 ;;
    --name) NAME="$2"; shift 2 ;;
    --runner-dir) RUNNER_DIR="$2"; shift 2 ;;
    --venv) VENV="$2"; shift 2 ;;
    --user) RUNNER_USER="$2"; shift 2 ;;
    --no-device) NEED_DEVICE=0; shift ;;
    --no-service) SERVICE=0; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; printf 'provision: unknown option %s\n' "$1" >&2; exit 2 ;;
  esac
done

say() { printf '%s\n' "$*"; }
fail() { printf 'provision: %s\n' "$*" >&2; exit 1; }
# The command as a shell line, with the registration token masked.
shown() {
  local line="" arg
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./:=,@+%-]+$ ]]; then line+="$arg "; else line+="$(printf '%q' "$arg") "; fi
  done
  line="${line% }"
  if [ -n "$TOKEN" ]; then line="${line//"$TOKEN"/***}"; fi
  printf '%s' "$line"
}
# Make a change: run it, or with --dry-run print it.
change() {
  if [ "$DRY" = 1 ]; then say "would run: $(shown "$@")"; else say "+ $(shown "$@")"; "$@"; fi
}
# Write a file from stdin with owner and mode: or with --dry-run print it.
write_file() { # path mode owner:group
  local tmp
  tmp="$(mktemp)"
  cat >"$tmp"
  if [ "$DRY" = 1 ]; then
    say "would write $1 (mode $2, $3):"
    sed 's/^/    /' "$tmp"
  else
    install -D -m "$2" -o "${3%%:*}" -g "${3##*:}" "$tmp" "$1"
    say "✓ wrote $1"
  fi
  rm -f "$tmp"
}
is_root() { [ "$(id -u)" = 0 ]; }
user_exists() { id -u "$RUNNER_USER" >/dev/null 2>&1; }
# Run as the runner user when there is one and we may switch to it (adb keys and server are per user).
as_runner() {
  if is_root && user_exists; then runuser -u "$RUNNER_USER" -- env HOME="$STATE" "$@"; else "$@"; fi
}

if [ "$DRY" = 0 ] && ! is_root; then
  fail "run as root (sudo): it creates a user, /etc/aipc-runner and a systemd unit; or use --dry-run"
fi
[ "$DRY" = 1 ] && say "dry run: checks run; changes are printed, not made"

# ── 1. QAIRT SDK: the same search order as bot/backends/qairt_sdk.py ─────────────────────────────
if [ -z "$SDK" ]; then
  SDK="$(find /opt/qcom/aistack/qairt -mindepth 1 -maxdepth 1 -type d 2>/dev/null | sort -V | tail -n1 || true)"
fi
case "$(uname -m)" in aarch64) HOST=aarch64-ubuntu-gcc9.4 ;; *) HOST=x86_64-linux-clang ;; esac
[ -n "$SDK" ] || fail "QAIRT SDK not found: pass --sdk or set QAIRT_SDK_ROOT / QNN_SDK_ROOT (nothing in /opt/qcom/aistack/qairt/ either)"
SDK="$(cd "$SDK" 2>/dev/null && pwd)" || fail "QAIRT SDK root $SDK does not exist"
[ -d "$SDK/bin/$HOST" ] || fail "$SDK is not a QAIRT SDK root: no bin/$HOST/"
VERSION="$(sed -n -E "s/^[[:space:]]*version[[:space:]]*:[[:space:]]*['\"]?([A-Za-z0-9_.]+).*/\1/p" "$SDK/sdk.yaml" 2>/dev/null | head -n1)"
[ -n "$VERSION" ] || VERSION="$(basename "$SDK")"
if [ "$(printf '%s\n%s\n' "$MIN_SDK" "$VERSION" | sort -V | head -n1)" != "$MIN_SDK" ]; then
  fail "QAIRT SDK $VERSION at $SDK is older than $MIN_SDK"
fi
for tool in qnn-context-binary-generator qairt-converter qairt-quantizer qnn-net-run; do
  [ -x "$SDK/bin/$HOST/$tool" ] || fail "$SDK/bin/$HOST/$tool missing or not executable"
done
say "✓ QAIRT SDK $VERSION at $SDK (qnn-context-binary-generator present)"

# ── 2. The unprivileged runner user (jobs run as it; adb through the plugdev group) ──────────────
if user_exists; then
  say "✓ user $RUNNER_USER exists"
else
  change useradd --system --user-group --home-dir "$STATE" --shell /usr/sbin/nologin "$RUNNER_USER"
fi
if getent group plugdev >/dev/null 2>&1 && ! id -nG "$RUNNER_USER" 2>/dev/null | grep -qw plugdev; then
  change usermod -a -G plugdev "$RUNNER_USER"
fi
change install -d -m 0750 -o "$RUNNER_USER" -g "$RUNNER_USER" "$STATE"

# ── 3. Python venv (root-owned: jobs cannot change the code the service runs) ───────────────────
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || fail "$PYTHON is older than 3.11 (onnxruntime-qnn needs ≥ 3.11)"
if [ -x "$VENV/bin/python" ]; then say "✓ venv $VENV exists"; else change "$PYTHON" -m venv "$VENV"; fi
change "$VENV/bin/pip" install --quiet torch==2.13.0 -e "$REPO"

# ── 4. What the bot sees: SDK, devices (state, SoC, HTP arch, free space) ───────────────────────
AIPC="$VENV/bin/aipc"
LABELS=""
if [ -x "$AIPC" ]; then
  REPORT="$(as_runner env QAIRT_SDK_ROOT="$SDK" "$AIPC" doctor --json)" || fail "aipc doctor: no backend can deploy here"
  REPORT="$REPORT" NEED_DEVICE="$NEED_DEVICE" SDK_VERSION="$VERSION" "$VENV/bin/python" - <<'PY' || exit 1
import json, os, sys
r = json.loads(os.environ["REPORT"])
b = {x["name"]: x for x in r["backends"]}
bad = []
if not b["qairt-sdk"]["available"]:
    bad.append("the bot does not see the SDK: " + b["qairt-sdk"]["reason"])
elif r["sdk"]["version"] != os.environ["SDK_VERSION"]:
    bad.append("the bot sees SDK %s, not %s" % (r["sdk"]["version"], os.environ["SDK_VERSION"]))
for d in r["devices"]:
    line = "%s device %s %s: %s, SoC %s, HTP %s, %s MB free in /data/local/tmp" % (
        "✓" if d["healthy"] else "✗", d["serial"], d["state"], d["model"] or "?", d["soc_name"] or d["soc"] or "?",
        d["htp_arch"] or "?", "?" if d["free_mb"] is None else d["free_mb"])
    if not d["healthy"]:
        line += " — " + "; ".join(d["problems"])
    print(line + (" (selected)" if d["selected"] else ""))
if not r["devices"]:
    print("- no device attached (" + b["adb"]["reason"] + ")")
if os.environ["NEED_DEVICE"] == "1" and not b["adb"]["available"]:
    bad.append("no usable device: " + b["adb"]["reason"] + " (or pass --no-device for an SDK-only runner)")
print("✓ github token %s, LLM key %s (values never shown)" % (r["github_token"], r["llm_key"]))
for line in bad:
    print("provision: " + line, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
  LABELS="$(as_runner env QAIRT_SDK_ROOT="$SDK" "$AIPC" doctor --labels)"
else
  [ "$DRY" = 1 ] || fail "$AIPC missing after the venv install"
  say "(no $AIPC yet: device checks and labels come from it once the venv exists)"
fi

# ── 5. Labels: exactly what this machine can do, so runs-on only lands where it can run ──────────
[ -n "$LABELS" ] || LABELS="<labels from aipc doctor --labels>"
say "labels: $LABELS"

# ── 6. Settings the service and its jobs read (no secrets here) ──────────────────────────────────
ENV_TEXT="$(cat <<EOF
# Written by runners/provision.sh; read by aipc-runner.service and every job it runs. No secrets.
QAIRT_SDK_ROOT=$SDK
AIPC_VENV=$VENV
AIPC_RUNNER_DIR=$RUNNER_DIR
AIPC_RUNNER_URL=$URL
AIPC_RUNNER_NAME=$NAME
AIPC_RUNNER_USER=$RUNNER_USER
EOF
)"
if [ -n "${ANDROID_SERIAL:-}" ]; then ENV_TEXT+=$'\n'"ANDROID_SERIAL=$ANDROID_SERIAL"; fi
printf '%s\n' "$ENV_TEXT" | write_file "$ETC/runner.env" 0640 "root:$RUNNER_USER"

# ── 7. Registration: ephemeral, one job per registration ─────────────────────────────────────────
[ -x "$RUNNER_DIR/config.sh" ] || {
  [ "$DRY" = 1 ] || fail "no actions runner in $RUNNER_DIR: unpack the actions/runner release there first (runners/README.md, step 4)"
  say "(no actions runner in $RUNNER_DIR yet: unpack the actions/runner release there first)"
}
if [ -f "$RUNNER_DIR/.runner" ]; then
  say "✓ runner already registered in $RUNNER_DIR (it takes one job, then the service registers anew)"
elif [ -n "$TOKEN" ]; then
  [ -n "$URL" ] || fail "--token needs --url (the repository or organisation to register with)"
  change runuser -u "$RUNNER_USER" -- "$RUNNER_DIR/config.sh" --unattended --url "$URL" --token "$TOKEN" \
    --name "$NAME" --no-default-labels --labels "$LABELS" --ephemeral --work _work --replace
elif [ -n "$JIT_FILE" ]; then
  [ -r "$JIT_FILE" ] || fail "JIT config $JIT_FILE is not readable"
  change install -D -m 0600 -o root -g root "$JIT_FILE" "$ETC/jitconfig.once"
else
  say "no --token or --jit-config: the service registers itself with the admin token ($ETC/github-admin-token)"
fi
if [ -n "$ADMIN_TOKEN_FILE" ]; then
  [ -r "$ADMIN_TOKEN_FILE" ] || fail "admin token file $ADMIN_TOKEN_FILE is not readable"
  change install -D -m 0600 -o root -g root "$ADMIN_TOKEN_FILE" "$ETC/github-admin-token"
fi

# ── 8. The service: hardened unit + the wrapper that re-registers after every job ───────────────
if [ "$SERVICE" = 1 ]; then
  change install -D -m 0755 -o root -g root "$HERE/aipc-runner.sh" "$LIBEXEC/aipc-runner.sh"
  change install -D -m 0644 -o root -g root "$HERE/aipc-runner.service" "$UNIT"
  change systemctl daemon-reload
  change systemctl enable --now aipc-runner.service
  say "follow it with: journalctl -u aipc-runner -f"
fi
say "done$([ "$DRY" = 1 ] && printf ' (dry run: nothing changed)')"
