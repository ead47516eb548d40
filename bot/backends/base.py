"""The one interface every backend implements, and the registry that picks one.

Stages talk to a backend only through this: probe which nodes it accepts, compile a graph into
what the device runs, and run that on sample inputs. The default is ONNX Runtime's QNN EP
(real HTP, simulated on x86_64); the QAIRT SDK and adb devices are other implementations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    import numpy as np

from bot.errors import BadInput
from bot.records import RejectedNode
from bot.spec.schema import TargetSpec


@dataclass
class Placement:
    """Where each node landed. `rejected` carries the backend's own reason per node."""

    total_nodes: int
    backend_nodes: int
    fallback_nodes: list[str] = field(default_factory=list)
    rejected: list[RejectedNode] = field(default_factory=list)
    log: str = ""

    @property
    def full(self) -> bool:
        return not self.fallback_nodes and not self.rejected


@dataclass
class CompileRequest:
    float_onnx: Path  # optimized float graph
    deploy_onnx: Path  # the graph to deploy: QDQ for quantized targets, float for fp16
    target: TargetSpec
    out_dir: Path
    calibration: list[dict[str, np.ndarray]] = field(default_factory=list)
    encodings: Path | None = None  # quantization overrides (tensor → bitwidth/scale) for SDK quantizers
    calibration_method: str = "minmax"  # spec.calibration.method, for SDK quantizers (minmax|entropy|percentile)
    model_name: str = ""  # spec.name: names the device folder of on-device runs


@dataclass
class Compiled:
    """What the device loads; `files` are every file that must travel together."""

    entry: Path
    files: list[Path]
    format: str  # "qnn-epcontext", "qnn-context-binary", "snpe-dlc"
    prepare_seconds: float = 0.0


@dataclass
class RunResult:
    outputs: list[dict[str, np.ndarray]]
    seconds_per_inference: list[float]


class Backend(Protocol):
    name: str

    def available(self) -> tuple[bool, str]: ...

    def versions(self) -> dict[str, str]: ...

    def probe(self, model: Path, target: TargetSpec) -> Placement: ...

    def compile(self, req: CompileRequest) -> Compiled: ...

    def run(self, compiled: Compiled, feeds: list[dict[str, np.ndarray]], target: TargetSpec) -> RunResult: ...


_REGISTRY: dict[str, Callable[[], Backend]] = {}


def register(name: str):
    def deco(factory: Callable[[], Backend]):
        _REGISTRY[name] = factory
        return factory

    return deco


def names() -> list[str]:
    return list(_REGISTRY)


def get(name: str) -> Backend:
    if name not in _REGISTRY:
        raise BadInput(f"unknown backend {name!r}; known: {', '.join(_REGISTRY)}", where="target.engine")
    backend = _REGISTRY[name]()
    ok, why = backend.available()
    if not ok:
        raise BadInput(f"backend {name!r} is not available on this machine: {why}", where="target.engine",
                       hint="run `aipc doctor` to see what this machine can do")
    return backend
