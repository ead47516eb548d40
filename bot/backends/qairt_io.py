"""The QAIRT SDK's file formats, shared by the host-SDK and adb backends.

- `io.json`: the graph's input/output names, shapes, dtypes and layouts, taken from the float ONNX
  at compile time and shipped beside the context binary, because `run` needs the output shapes
  to reshape `Result_N/<output>.raw` and only gets the compiled files.
- `input_list`: one line per inference; a bare path for single-input graphs, `name:=path` pairs
  separated by spaces otherwise; raw files are float32 (no `--use_native_input_files`).
- outputs: `<output_dir>/Result_<i>/<tensor>.raw`, float32, `i` the line of the input_list.
- quantization overrides: the AIMET-style JSON (`activation_encodings` / `param_encodings`,
  each tensor a list of {bitwidth, dtype, is_symmetric, min, max, offset, scale}) that
  `qairt-quantizer`/`snpe-onnx-to-dlc --quantization_overrides` take, converted from the quantize
  stage's `encodings.json` (tensor → scale, offset (= ONNX zero point), dtype, bits).
- profiling: `qnn-profile-viewer --output x.csv` rows; the `execute` row's value is µs (Olive's
  reading of the same file); text logs' `NetRun: N us` as a fallback.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from bot.records import FailureKind, StageFailed
from bot.backends.sdk_errors import tool_failure

IO_FILE = "io.json"

_ONNX_DT = {1: "float32", 10: "float16", 6: "int32", 7: "int64", 2: "uint8", 3: "int8", 9: "bool", 4: "uint16",
            5: "int16", 11: "float64"}


@dataclass
class Tensor:
    name: str
    shape: list[int]
    dtype: str = "float32"
    layout: str = ""  # layout of the raw files the runtime reads/writes ("NHWC" when transposed)


@dataclass
class GraphIO:
    inputs: list[Tensor]
    outputs: list[Tensor]
    meta: dict = field(default_factory=dict)

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps({"inputs": [asdict(t) for t in self.inputs],
                                    "outputs": [asdict(t) for t in self.outputs], "meta": self.meta}, indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> "GraphIO":
        d = json.loads(path.read_text())
        return cls([Tensor(**t) for t in d["inputs"]], [Tensor(**t) for t in d["outputs"]], d.get("meta", {}))


def graph_io(model: Path) -> GraphIO:
    """Names, static shapes and dtypes of the graph's inputs and outputs (after shape inference)."""
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
    m = onnx.load(str(model), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    try:
        m = onnx.shape_inference.infer_shapes(m)
    except Exception:  # pragma: no cover - a graph the optimizer already checked
        pass

    def t(v) -> Tensor:
        tt = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        return Tensor(v.name, dims, _ONNX_DT.get(tt.elem_type, str(tt.elem_type)))

    return GraphIO([t(v) for v in m.graph.input if v.name not in inits], [t(v) for v in m.graph.output])


def sanitize(name: str) -> str:
    """How the QNN converters name a tensor: non-word characters become `_`, no leading digit."""
    s = re.sub(r"\W", "_", name)
    return "_" + s if s[:1].isdigit() else s


# ── input_list and raw files ───────────────────────────────────────────────────────────────────
def to_layout(a: np.ndarray, layout: str) -> np.ndarray:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    return np.transpose(a, (0, 2, 3, 1)) if layout == "NHWC" and a.ndim == 4 else a


def from_layout(a: np.ndarray, layout: str) -> np.ndarray:
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    return np.transpose(a, (0, 3, 1, 2)) if layout == "NHWC" and a.ndim == 4 else a


def write_inputs(feeds: list[dict[str, np.ndarray]], io: GraphIO, folder: Path, *,
                 path_prefix: str | None = None) -> Path:
    """Raw float32 files for every feed and the `input_list.txt` naming them.

    `path_prefix` replaces `folder` in the list's paths (the device's folder for adb runs).
    """
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, feed in enumerate(feeds):
        parts = []
        for t in io.inputs:
            if t.name not in feed:
                raise StageFailed(tool_failure("validate", "input_list", f"sample {i} has no input {t.name!r}", "",
                                               kind=FailureKind.INTERFACE_MISMATCH))
            arr = to_layout(np.asarray(feed[t.name], dtype=np.float32), t.layout)
            fname = f"{sanitize(t.name)}_{i}.raw"
            arr.tofile(folder / fname)
            where = f"{path_prefix.rstrip('/')}/{fname}" if path_prefix else str(folder / fname)
            parts.append(where if len(io.inputs) == 1 else f"{t.name}:={where}")
        lines.append(" ".join(parts))
    path = folder / "input_list.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def read_outputs(out_dir: Path, io: GraphIO, n: int, *, tool: str, log: str,
                 stage: str = "validate") -> list[dict[str, np.ndarray]]:
    """`Result_<i>/<output>.raw` (float32) reshaped to the graph's output shapes, or a structured failure."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    outs = []
    for i in range(n):
        res, got = out_dir / f"Result_{i}", {}
        for t in io.outputs:
            cands = [res / f"{t.name}.raw", res / f"{sanitize(t.name)}.raw", res / f"{sanitize(t.name)}_native.raw"]
            f = next((c for c in cands if c.is_file()), None)
            if f is None:
                listing = sorted(p.name for p in res.iterdir()) if res.is_dir() else []
                raise StageFailed(tool_failure(stage, tool, f"no output {t.name!r} for sample {i}: expected "
                                               f"{cands[0].relative_to(out_dir)} (found {listing or 'nothing'})",
                                               log, kind=FailureKind.TOOL_ERROR))
            data = np.fromfile(f, dtype=np.float32)
            want = int(np.prod(t.shape)) if t.shape else 1
            if data.size != want or f.stat().st_size != 4 * want:
                raise StageFailed(tool_failure(stage, tool, f"garbage output {f.relative_to(out_dir)}: "
                                               f"{f.stat().st_size} bytes, expected {4 * want} "
                                               f"(float32 {t.shape})", log, kind=FailureKind.TOOL_ERROR))
            shape = [t.shape[0], t.shape[2], t.shape[3], t.shape[1]] if t.layout == "NHWC" and len(t.shape) == 4 \
                else t.shape
            got[t.name] = from_layout(data.reshape(shape), t.layout)
        outs.append(got)
    return outs


# ── quantization overrides ─────────────────────────────────────────────────────────────────────
def overrides_from_encodings(encodings: dict[str, dict], params: set[str]) -> dict:
    """The quantize stage's encodings (ONNX scale / zero point) → the SDK's overrides JSON.

    ONNX: real = scale · (q − zp), q ∈ [0, 2^bits − 1] for unsigned types, [−2^(bits−1), …] signed.
    SDK (AIMET legacy): real = scale · (q + offset) with q ∈ [0, 2^bits − 1], so offset = −zp for
    unsigned types; min = scale·offset, max = scale·(2^bits − 1 + offset). Signed zero points are
    shifted into the unsigned range first. Per-channel scales become one entry per channel.
    """
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    out = {"activation_encodings": {}, "param_encodings": {}}
    for name, e in encodings.items():
        bits = int(e["bits"])
        scales = np.atleast_1d(np.asarray(e["scale"], dtype=np.float64))
        zps = np.atleast_1d(np.asarray(e["offset"], dtype=np.int64))
        if zps.size == 1 and scales.size > 1:
            zps = np.repeat(zps, scales.size)
        signed = str(e.get("dtype", "uint8")).startswith("int")
        entries = []
        for s, z in zip(scales, zps):
            zu = int(z) + (2 ** (bits - 1) if signed else 0)
            offset = -zu
            entries.append({"bitwidth": bits, "dtype": "int", "is_symmetric": str(signed and int(z) == 0),
                            "min": float(s * offset), "max": float(s * (2 ** bits - 1 + offset)),
                            "offset": offset, "scale": float(s)})
        out["param_encodings" if name in params else "activation_encodings"][name] = entries
    return out


def write_overrides(encodings_path: Path, float_onnx: Path, dest: Path) -> Path:
    """Overrides for the tensors the SDK will see: those of the float graph it converts.

    The QDQ graph also holds tensors that exist only there (e.g. the `…_DequantizeLinear_Output`
    of an 8→16-bit conversion pair); they have no counterpart in the DLC and are left out.
    """
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
    enc = json.loads(encodings_path.read_text())
    m = onnx.load(str(float_onnx), load_external_data=False)
    params = {i.name for i in m.graph.initializer}
    known = params | {i.name for i in m.graph.input} | {o for n in m.graph.node for o in n.output}
    dest.write_text(json.dumps(overrides_from_encodings({k: v for k, v in enc.items() if k in known}, params),
                               indent=2))
    return dest


# ── profiling ──────────────────────────────────────────────────────────────────────────────────
def execute_us_from_csv(path: Path) -> list[float]:
    """Every `execute` row's time in µs from a qnn-profile-viewer CSV."""
    vals = []
    with path.open(newline="") as f:
        for row in csv.reader(f):
            cells = [c.strip().lower() for c in row]
            if "execute" in cells:
                j = cells.index("execute")
                num = next((c for c in cells[j + 1:] if _num(c)), None)
                if num is not None:
                    vals.append(float(num))
    return vals


def execute_us_from_text(text: str) -> list[float]:
    """`NetRun: 1234 us` (qnn-profile-viewer text) or `Total Inference Time: 1234 us` (snpe-diagview)."""
    rx = re.compile(r"(?:NetRun|Total Inference Time)[^:\n]*:\s*([0-9.]+)\s*us", re.IGNORECASE)
    return [float(m.group(1)) for m in rx.finditer(text)]


def _num(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def per_inference_seconds(us: list[float], n: int, wall_seconds: float) -> list[float]:
    """One latency per sample: the profile's execute times if there are any, else wall time / n."""
    if not us:
        return [wall_seconds / max(n, 1)] * n
    if len(us) >= n:
        return [u / 1e6 for u in us[-n:]]
    avg = sum(us) / len(us) / 1e6
    return [avg] * n
