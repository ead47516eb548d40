"""`aipc doctor`: what this machine can deploy to, found by asking each registered backend."""

from __future__ import annotations

from bot import backends


def diagnose() -> list[tuple[str, bool, str]]:
    rows = []
    for name in backends.names():
        backend = backends.base._REGISTRY[name]()
        ok, why = backend.available()
        if ok:
            why += "  " + ", ".join(f"{k} {v}" for k, v in backend.versions().items())
        rows.append((name, ok, why))
    return rows
