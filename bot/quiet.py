"""Capture what native libraries print straight to file descriptors 1 and 2.

The TorchScript exporter dumps whole IR graphs from C++ on failure and the QNN libraries print
banners; neither goes through Python's `sys.stdout`, so only an fd-level redirect keeps the
console readable. What was captured is returned so failures can keep it in their log.
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager


class Captured:
    text: str = ""


@contextmanager
def native_output():
    cap = Captured()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield cap
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            cap.text = tmp.read().decode(errors="replace")
