"""ONNX helpers shared by the stages that handle graphs: CPU parity and static-shape checks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from bot import metrics
from bot import samples as S
from bot.cpu_session import as_written
from bot.errors import BadInput
from bot.records import Check

PARITY_COSINE = 0.9999  # a float graph must match PyTorch far closer than any deployed one


def cpu_outputs(model: Path, feeds: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
    """The model's original outputs on the CPU, in order: a graph whose tail was moved to the
    host (`aipc.host_postprocess`) gets that tail run after it, as the device run does."""
    import onnxruntime as ort  # deferred: a slow import, only the CPU parity checks need it

    sess = ort.InferenceSession(str(model), as_written(), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in sess.get_inputs()}
    names = [o.name for o in sess.get_outputs()]
    from bot.graph.host_part import complete, host_part_of  # deferred: onnx (~0.4 s), not on a cached run

    host = host_part_of(model)
    outs = [sess.run(None, {k: v for k, v in f.items() if k in wanted}) for f in feeds]
    if host is None:
        return outs
    return [list(complete(host, {**f, **dict(zip(names, o))}).values()) for f, o in zip(feeds, outs)]


def parity_checks(model: Path, feeds, golden: list[dict[str, np.ndarray]], label: str) -> tuple[list[Check], dict]:
    """Compare a float graph on ONNX Runtime CPU with the PyTorch golden outputs, per output."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
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


def graph_output_names(model: Path, declared: list[str], where: str) -> list[str]:
    """The names an `onnx:` entry's outputs go by, in the graph's order.

    Validation matches outputs by name, so they must be the graph's own. `outputs:` may list them
    in any order (basic-pitch's nmp.onnx: names sorted differently from the outputs), or be left
    out; any other name is refused here, at load, with the graph's names listed — not found at
    validate after quantizing and compiling."""
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
    graph = onnx.load(str(model), load_external_data=False).graph
    names = [o.name for o in graph.output]
    if not declared:
        return names
    if sorted(declared) != sorted(names):
        unknown = [n for n in declared if n not in names]
        what = (f"names {', '.join(map(repr, unknown))}, which the graph does not have" if unknown
                else f"{len(declared)} output(s) ({', '.join(declared)})")
        raise BadInput(f"outputs: the definition {what}; the ONNX graph's outputs are, in order: "
                       f"{', '.join(names)}. List those names (any order) or leave `outputs:` out.", where=where)
    return names


def correct_output_shapes(model: onnx.ModelProto, actual: dict[str, list[int]]) -> dict[str, dict[str, list]]:
    """Replace declared output shapes that disagree with the shapes the model really produces.

    An ONNX file may declare a wrong static output shape (hand-edited, or exported for another
    input size). ONNX Runtime runs it anyway (a lenient merge), but the declaration becomes the
    compiled binary's output shape and validate then finds an interface mismatch. `actual` is what
    running the model on the definition's inputs gave (the golden outputs). Symbolic dims are left
    for the static-shape handling; returns {name: {"declared", "actual"}} for each corrected output."""
    fixed = {}
    for vi in model.graph.output:
        want = actual.get(vi.name)
        if want is None or not vi.type.tensor_type.HasField("shape"):
            continue
        dims = vi.type.tensor_type.shape.dim
        declared = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
        wrong = len(dims) != len(want) or any(d.HasField("dim_value") and d.dim_value != v for d, v in zip(dims, want))
        if not wrong:
            continue
        vi.type.tensor_type.shape.Clear()
        for v in want:
            vi.type.tensor_type.shape.dim.add().dim_value = int(v)
        fixed[vi.name] = {"declared": declared, "actual": [int(v) for v in want]}
    return fixed


def unused_inputs(model: onnx.ModelProto, declared: list[str]) -> list[str]:
    """Declared inputs the graph does not take (the TorchScript exporter drops an input the
    forward never reads; dynamo keeps it)."""
    taken = {i.name for i in model.graph.input}
    return [n for n in declared if n not in taken]


def stage_feeds(ctx, kind: str) -> list[dict[str, np.ndarray]]:
    """`samples` or `calibration` as the graph takes them: the export stage's copy without the
    declared inputs the graph does not use when it found any (feeding ONNX Runtime a name the
    graph lacks fails: "Invalid input name"), else the load stage's."""

    export = ctx.results.get("export")
    if export is not None and kind in export.artifacts:
        return S.load(ctx.artifact("export", kind))
    return S.load(ctx.artifact("load", kind))
