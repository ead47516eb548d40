"""The compat probe's child process: open one HTP session with verbose logs and CPU fallback allowed,
so the QNN EP writes its validation log ("Validation FAILED … REASON : …") to stderr for the parent
to read (`OrtQnnBackend.probe`).

It is run by path and imports nothing from the bot: `python -m bot.backends.ort_qnn` loaded the
`bot.backends` package (pydantic, the definition's schema, every backend), ≈ 0.3 CPU s of start-up in
every probe, while the child needs only onnxruntime and the provider options the parent computed.

    python ort_qnn_probe.py MODEL.onnx '{"backend_path": …, "htp_arch": …, …}'
"""

from __future__ import annotations

import json
import sys

import onnxruntime as ort
import onnxruntime_qnn

EP = "QNNExecutionProvider"


def main(argv: list[str]) -> int:
    model, provider_options = argv[0], json.loads(argv[1])
    ort.register_execution_provider_library(EP, onnxruntime_qnn.get_library_path())
    so = ort.SessionOptions()
    so.log_severity_level = 0  # verbose: the placement and validation lines are what the parent parses
    so.add_provider_for_devices([d for d in ort.get_ep_devices() if d.ep_name == EP], provider_options)
    ort.InferenceSession(model, so)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
