"""Backends behind one interface (`base.Backend`), one module each, one registry."""

from bot.backends import ort_qnn  # noqa: F401  (registers "ort-qnn")
from bot.backends import qairt_sdk  # noqa: F401  (registers "qairt-sdk")
from bot.backends import adb_device  # noqa: F401  (registers "adb")
from bot.backends.base import Backend, Compiled, CompileRequest, Placement, RunResult, get, names, register
from bot.spec.schema import TargetSpec


def for_target(target: TargetSpec) -> Backend:
    """The backend a target asks for; `auto` means the embedded QNN HTP unless told otherwise."""
    return get("ort-qnn" if target.engine == "auto" else target.engine)


__all__ = ["Backend", "Compiled", "CompileRequest", "Placement", "RunResult", "for_target", "get", "names", "register"]
