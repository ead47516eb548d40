"""ONNX helpers shared by the stages that handle graphs: CPU parity and static-shape checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from bot import metrics
from bot.records import Check

PARITY_COSINE = 0.9999  # a float graph must match PyTorch far closer than any deployed one


def cpu_outputs(model: Path, feeds: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
    """The model's original outputs on the CPU, in order: a graph whose tail was moved to the
    host (`aipc.host_postprocess`) gets that tail run after it, as the device run does."""
    import onnxruntime as ort

    from bot.repair.graph._host_cut import complete, host_part_of

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    wanted = {i.name for i in sess.get_inputs()}
    names = [o.name for o in sess.get_outputs()]
    host = host_part_of(model)
    outs = [sess.run(None, {k: v for k, v in f.items() if k in wanted}) for f in feeds]
    if host is None:
        return outs
    return [list(complete(host, {**f, **dict(zip(names, o))}).values()) for f, o in zip(feeds, outs)]


def parity_checks(model: Path, feeds, golden: list[dict[str, np.ndarray]], label: str) -> tuple[list[Check], dict]:
    """Compare a float graph on ONNX Runtime CPU with the PyTorch golden outputs, per output."""
    outs = cpu_outputs(model, feeds)
    names = list(golden[0])
    checks, worst = [], {}
    if len(outs[0]) != len(names):
        return [Check(f"{label}: output count", False, len(outs[0]), len(names))], {}
    for j, name in enumerate(names):
        ref = metrics.concat([g[name] for g in golden])
        got = metrics.concat([o[j] for o in outs])
        cos = metrics.cosine(ref, got) if np.any(ref) else (1.0 if not np.any(got) else 0.0)
        mx = metrics.max_abs(ref, got)
        tol = 1e-3 * max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)
        worst[name] = {"cosine": cos, "max_abs": mx}
        checks.append(Check(f"{label}: {name} cosine vs PyTorch", bool(cos >= PARITY_COSINE), round(cos, 6), PARITY_COSINE))
        checks.append(Check(f"{label}: {name} max-abs vs PyTorch", bool(mx <= tol), mx, tol))
    return checks, worst


def dynamic_dims(model: onnx.ModelProto) -> list[str]:
    out = []
    for vi in list(model.graph.input) + list(model.graph.output):
        for k, d in enumerate(vi.type.tensor_type.shape.dim):
            if not d.HasField("dim_value"):
                out.append(f"{vi.name}[{k}]={d.dim_param or '?'}")
    return out


def fix_input_shapes(model: onnx.ModelProto, shapes: dict[str, list[int]]) -> None:
    for vi in model.graph.input:
        if vi.name in shapes:
            for d, v in zip(vi.type.tensor_type.shape.dim, shapes[vi.name]):
                d.Clear()
                d.dim_value = v


def opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
