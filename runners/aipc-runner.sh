#!/usr/bin/env bash
# The service side of an ephemeral AIPC runner: one registration, one job, then systemd starts over.
#
#   aipc-runner.sh labels    (runner user)  what this machine can do now: `aipc doctor --labels` → labels file
#   aipc-runner.sh register  (root)         a single-use just-in-time (JIT) runner config for those labels,
#                                           minted with the admin token that only root can read
#   aipc-runner.sh run       (runner user)  take exactly one job with that config (or with the registration
#                                           provision.sh --token made), then clear the runner's local config
#
# `register` runs as root (systemd "+"), so it executes nothing the runner user can write: only this
# file (installed root-owned in /usr/local/lib/aipc-runner/), curl and the system python3. It treats the
# labels file, written by the runner user, as untrusted data.
#
# Settings (from /etc/aipc-runner/runner.env): AIPC_RUNNER_URL (https://github.com/OWNER/REPO or
# https://github.com/ORG), AIPC_RUNNER_NAME, AIPC_RUNNER_DIR, AIPC_VENV, AIPC_RUNNER_GROUP_ID (default 1),
# AIPC_ADMIN_TOKEN_FILE, AIPC_GITHUB_API (GitHub Enterprise, tests), QAIRT_SDK_ROOT, ANDROID_SERIAL.
set -euo pipefail

RUNNER_DIR="${AIPC_RUNNER_DIR:-/var/lib/aipc-runner/actions-runner}"
VENV="${AIPC_VENV:-/opt/aipc/venv}"
LABELS_FILE="${AIPC_RUNNER_LABELS_FILE:-${RUNTIME_DIRECTORY:-/run/aipc-runner}/labels}"
HANDOFF="${AIPC_RUNNER_HANDOFF:-/run/aipc-runner-jit}"
ONCE="${AIPC_RUNNER_JIT_ONCE:-/etc/aipc-runner/jitconfig.once}"
ADMIN_TOKEN_FILE="${AIPC_ADMIN_TOKEN_FILE:-/etc/aipc-runner/github-admin-token}"
RUNNER_USER="${AIPC_RUNNER_USER:-aipc-runner}"
EX_CONFIG=78 # systemd's RestartPreventExitStatus: a person must act, looping will not help

say() { printf 'aipc-runner: %s\n' "$*"; }
die() { local code="$1"; shift; printf 'aipc-runner: %s\n' "$*" >&2; exit "$code"; }

labels() {
  local found
  found="$("$VENV/bin/aipc" doctor --labels)" || die 1 "aipc doctor found no backend that can deploy here (see \`aipc doctor\`)"
  mkdir -p "$(dirname "$LABELS_FILE")"
  printf '%s\n' "$found" >"$LABELS_FILE"
  say "labels: $found"
}

# The REST endpoint that mints a JIT runner config for the repository or organisation in AIPC_RUNNER_URL.
jit_endpoint() {
  local url="${AIPC_RUNNER_URL:?AIPC_RUNNER_URL is not set (see /etc/aipc-runner/runner.env)}" host path api
  url="${url%/}"
  url="${url%.git}"
  host="$(printf '%s' "$url" | sed -E 's#^https?://([^/]+).*#\1#')"
  path="$(printf '%s' "$url" | sed -E 's#^https?://[^/]+/?##')"
  if [ -n "${AIPC_GITHUB_API:-}" ]; then api="${AIPC_GITHUB_API%/}"
  elif [ "$host" = "github.com" ]; then api="https://api.github.com"
  else api="https://$host/api/v3"; fi
  case "$path" in
    */*/*|"") die "$EX_CONFIG" "AIPC_RUNNER_URL=$url: expected https://HOST/OWNER/REPO or https://HOST/ORG" ;;
    */*) printf '%s/repos/%s/actions/runners/generate-jitconfig\n' "$api" "$path" ;;
    *) printf '%s/orgs/%s/actions/runners/generate-jitconfig\n' "$api" "$path" ;;
  esac
}

register() {
  export PATH=/usr/sbin:/usr/bin:/sbin:/bin # root runs only system tools
  local py=/usr/bin/python3 endpoint labels name body response cfg
  [ -x "$py" ] || py="$(command -v python3)"
  if [ -f "$RUNNER_DIR/.runner" ]; then
    say "already registered (provision.sh --token): run takes its one job"
    return 0
  fi
  install -d -m 0750 "$HANDOFF"
  if [ "$(id -u)" = 0 ]; then chown "root:$RUNNER_USER" "$HANDOFF"; fi
  rm -f "$HANDOFF/jitconfig" "$HANDOFF/request.json"
  if [ -f "$ONCE" ]; then # a JIT config handed to provision.sh: use it once
    install -m 0640 "$ONCE" "$HANDOFF/jitconfig"
    rm -f "$ONCE"
    if [ "$(id -u)" = 0 ]; then chown "root:$RUNNER_USER" "$HANDOFF/jitconfig"; fi
    say "using the JIT config given to provision.sh"
    return 0
  fi
  [ -r "$ADMIN_TOKEN_FILE" ] || die "$EX_CONFIG" "no admin token at $ADMIN_TOKEN_FILE, so the runner cannot re-register after its job; add one (runners/README.md, 'Re-registration') or run provision.sh --token again"
  if [ -L "$LABELS_FILE" ] || [ ! -f "$LABELS_FILE" ]; then
    die 1 "no labels file at $LABELS_FILE (the labels step did not run)"
  fi
  labels="$(head -c 2048 "$LABELS_FILE" | tr -d '\n')"
  [[ "$labels" =~ ^[a-z0-9._-]+(,[a-z0-9._-]+)*$ ]] || die 1 "the labels file at $LABELS_FILE is not a comma-separated label list; not using it"
  endpoint="$(jit_endpoint)"
  name="${AIPC_RUNNER_NAME:-$(hostname)-aipc}-$(date +%s)"
  body="$HANDOFF/request.json"
  ( umask 077; NAME="$name" LABELS="$labels" GROUP="${AIPC_RUNNER_GROUP_ID:-1}" "$py" -c '
import json, os
print(json.dumps({"name": os.environ["NAME"], "runner_group_id": int(os.environ["GROUP"]),
                  "labels": os.environ["LABELS"].split(","), "work_folder": "_work"}))' >"$body" )
  # The token goes to curl on stdin (a config line), never on a command line other users can read.
  response="$( { printf 'header = "Authorization: Bearer %s"\n' "$(tr -d '\r\n' <"$ADMIN_TOKEN_FILE")"; } |
    curl --config - -fsS --max-time 60 -X POST -H "Accept: application/vnd.github+json" \
      -H "X-GitHub-Api-Version: 2022-11-28" --data-binary "@$body" "$endpoint")" ||
    die 1 "could not mint a JIT runner config at $endpoint (token scope: repository Administration write, or organisation self-hosted runners)"
  rm -f "$body"
  cfg="$(printf '%s' "$response" | "$py" -c 'import json, sys; print(json.load(sys.stdin)["encoded_jit_config"])')" ||
    die 1 "the JIT answer from $endpoint has no encoded_jit_config"
  ( umask 027; printf '%s\n' "$cfg" >"$HANDOFF/jitconfig" )
  if [ "$(id -u)" = 0 ]; then chown "root:$RUNNER_USER" "$HANDOFF/jitconfig"; fi
  say "registered $name with labels $labels (single use)"
}

run() {
  cd "$RUNNER_DIR" 2>/dev/null || die "$EX_CONFIG" "no runner in $RUNNER_DIR (unpack the actions/runner release there: runners/README.md)"
  [ -x ./run.sh ] || die "$EX_CONFIG" "$RUNNER_DIR/run.sh missing (unpack the actions/runner release there)"
  local status=0 cfg
  if [ -f .runner ]; then
    ./run.sh || status=$?
  elif [ -f "$HANDOFF/jitconfig" ]; then
    cfg="$(cat "$HANDOFF/jitconfig")"
    ./run.sh --jitconfig "$cfg" || status=$?
  else
    die "$EX_CONFIG" "not registered: no $RUNNER_DIR/.runner and no JIT config in $HANDOFF"
  fi
  # One job per registration: whatever local config is left belongs to a runner GitHub has removed.
  rm -f .runner .credentials .credentials_rsaparams
  say "run.sh exited with status $status; the next registration starts on restart"
  return "$status"
}

case "${1:-}" in
  labels) labels ;;
  register) register ;;
  run) run ;;
  *) die 2 "usage: $0 labels|register|run" ;;
esac
