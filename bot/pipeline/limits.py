"""A time limit per stage (`limits.stage_seconds`): a hung forward, export or HTP preparation is
stopped with a message that names the stage.

Two layers, because the work is of two kinds:
- Python-level work (a model's forward looping, an exporter stuck in Python, a child process we
  wait on) is interrupted by SIGALRM in the main thread: `StageTimeout` is raised where the stage
  is, the stage ends as a failure, the run goes on (the repair loop or the CLI decide).
- Native code (QNN graph preparation inside onnxruntime holds the thread and never returns to the
  interpreter) cannot be interrupted from Python. A watchdog thread waits a grace period past the
  limit and, if the stage still has not ended, prints the message and ends the process (exit 1).
  This is safe because of the store's contract: every finished stage was renamed into place, the
  unfinished one is a `.partial` nobody reads, and a re-run resumes. The watchdog is armed only
  when the CLI owns the process (`enable_hard_stop`), never inside a test runner or a library user.

`StageTimeout` derives from BaseException so that the model's code and libraries catching
`Exception` do not swallow it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable

# seconds past the limit before the watchdog ends the process (an environment knob for tests)
HARD_STOP_GRACE = float(os.environ.get("AIPC_HARD_STOP_GRACE", "10"))
_hard_stop: Callable[[str], None] | None = None


class StageTimeout(BaseException):
    def __init__(self, stage: str, seconds: float):
        self.stage, self.seconds = stage, seconds
        super().__init__(f"stage {stage} did not finish within {seconds:g} s (limits.stage_seconds)")


def enable_hard_stop(on_stop: Callable[[str], None] | None = None) -> None:
    """Let the watchdog end the process when a stage is stuck in native code (the CLI calls this)."""
    global _hard_stop
    _hard_stop = on_stop or (lambda message: None)


def disable_hard_stop() -> None:
    global _hard_stop
    _hard_stop = None


@contextmanager
def stage_deadline(stage: str, seconds: float, grace: float | None = None):
    """Run the body with a deadline; raises `StageTimeout` at the deadline (main thread only)."""
    in_main = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    previous = None
    if in_main:
        def on_alarm(signum, frame):
            raise StageTimeout(stage, seconds)

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    done = threading.Event()
    grace = HARD_STOP_GRACE if grace is None else grace
    watchdog = None
    if _hard_stop is not None:
        def stop():
            if done.wait(seconds + grace):
                return
            message = (f"stage {stage} did not finish within {seconds:g} s (limits.stage_seconds) and could not be "
                       f"interrupted (it is in native code); stopping this run. Finished stages are kept: raise "
                       f"limits.stage_seconds and run again to resume")
            try:
                _hard_stop(message)
            finally:
                sys.stderr.write(f"error: {message}\n")
                sys.stderr.flush()
                os._exit(1)

        watchdog = threading.Thread(target=stop, name=f"aipc-watchdog-{stage}", daemon=True)
        watchdog.start()
    try:
        yield
    finally:
        done.set()
        if in_main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
