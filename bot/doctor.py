"""`aipc doctor`: what this machine can deploy to, found by asking each registered backend."""

from __future__ import annotations

from bot import backends


def diagnose() -> list[tuple[str, bool, str]]:
    rows = []
    for name in backends.names():
        backend = backends.base._REGISTRY[name]()
        ok, why = backend.available()
        if ok:
            try:
                why += "  " + ", ".join(f"{k} {v}" for k, v in backend.versions().items())
            except Exception as e:  # a backend that is there but cannot say its versions is still worth listing
                why += f"  (versions unavailable: {e})"
        rows.append((name, ok, why))
    return rows
