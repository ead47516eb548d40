"""One run at a time per deployment folder.

Two `aipc deploy` of the same model share `deployments/<name>/.work/` (the stage store) and the
bot branch; run together they would delete each other's `.partial` folders and interleave
commits. The second run waits for the first (and says so), then finds every stage the first one
finished in the store and reuses it.

`filelock` (already installed with torch; declared with a range in pyproject) rather than raw
`fcntl`: the same `flock(2)` underneath on Linux — released by the kernel when the holder dies,
even by SIGKILL, so a killed run never leaves a stale lock — with a timeout and polling built in,
and a portable fallback elsewhere.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from filelock import FileLock, Timeout

from bot.errors import BadInput
from bot.store import WORK

LOCK_FILE = "deploy.lock"
OWNER_FILE = "deploy.lock.owner"


def _owner(store: Path) -> str:
    try:
        o = json.loads((store / OWNER_FILE).read_text())
        return f"pid {o['pid']}, {o['command']}, since {o['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def deployment_lock(out_dir: Path, *, command: str, wait_seconds: float,
                    say: Callable[[str], None] = lambda m: None) -> Iterator[None]:
    """Hold the deployment folder's lock for the body; wait up to `wait_seconds` for another run."""
    store = Path(out_dir) / WORK
    store.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(store / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        say(f"another run holds {out_dir} ({_owner(store)}); waiting for it to finish "
            f"(up to {wait_seconds:.0f} s)")
        t0 = time.monotonic()
        try:
            lock.acquire(timeout=wait_seconds, poll_interval=0.2)
        except Timeout:
            raise BadInput(f"another run ({_owner(store)}) still holds this deployment folder after "
                           f"{wait_seconds:.0f} s; try again when it has finished", where=str(out_dir)) from None
        say(f"the other run finished after {time.monotonic() - t0:.1f} s; continuing (its finished stages are reused)")
    try:
        tmp = store / (OWNER_FILE + ".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "command": command,
                                   "since": time.strftime("%H:%M:%S", time.gmtime()) + "Z"}))
        os.replace(tmp, store / OWNER_FILE)
        yield
    finally:
        lock.release()
