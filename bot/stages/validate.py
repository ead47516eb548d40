"""Stage 7, validate: run what was compiled, on the target backend, against the golden outputs.

Per output: cosine, SQNR, PSNR, max-abs, and top-k agreement for classifiers, each against the
definition's threshold (defaults from the AIPC report: cosine ≥ 0.99 float, ≥ 0.95 quantized),
held on every validation sample: the verdict is the worst sample's (index and file recorded),
the pooled figure over all samples beside it, because pooling hides a failing sample.
Writes `outputs.npz` and `metrics.json`. A collapsed output (cosine undefined) fails and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from bot import metrics as M
from bot import samples as S
from bot.backends.base import Compiled
from bot.records import Check, Failure, FailureKind, StageFailed, StageResult
from bot.stages._onnx import stage_feeds
from bot.stages.base import Stage, StageContext
from bot.store import write_json
from bot.task.hook import task_files, validate_task


def _ok(value: float, bound: float, higher_is_better: bool = True) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return value >= bound if higher_is_better else value <= bound


class ValidateStage(Stage):
    name = "validate"
    depends_on = ("validation", "target", "outputs", "task", "data.labels")

    @classmethod
    def files_read(cls, spec) -> list[str]:
        """The task's own code (postprocess, custom metrics): editing it re-runs validate alone."""
        return task_files(spec)

    def run(self, ctx: StageContext, work: Path) -> StageResult:
        comp = ctx.results["compile"]
        cdir = ctx.dirs["compile"]
        compiled = Compiled(entry=cdir / comp.artifacts["entry"], files=[cdir / f for f in comp.artifacts.values()],
                            format=comp.metrics.get("format", ""))
        feeds = stage_feeds(ctx, "samples")
        golden = S.load(ctx.artifact("load", "golden"))
        ctx.say(f"running {len(feeds)} sample(s) on {ctx.backend.name}")
        run = ctx.backend.run(compiled, feeds, ctx.spec.target)
        from bot.graph.host_part import complete, host_part_of  # deferred: onnx (~0.4 s); a cached run opens no graph

        host = host_part_of(ctx.artifact("quantize", "onnx"))
        if host:  # a tail moved off the device runs here, as it does in the packaged run.py
            run.outputs = [complete(host, {**f, **o}) for f, o in zip(feeds, run.outputs)]
            ctx.say(f"host part: {', '.join(op for p in host['parts'] for op in p['ops'])} on the CPU")
        S.save(work / "outputs.npz", run.outputs)

        checks = self._interface(golden[0], run.outputs[0])
        if not all(c.passed for c in checks):
            raise StageFailed(Failure(self.name, FailureKind.INTERFACE_MISMATCH,
                                      "the compiled model's outputs differ from the golden ones in name or shape",
                                      details={"expected": {k: list(v.shape) for k, v in golden[0].items()},
                                               "got": {k: list(v.shape) for k, v in run.outputs[0].items()}}), checks)
        names = sample_names(ctx.spec, len(feeds))
        producers = output_producers(ctx.artifact("optimize", "onnx")) if "optimize" in ctx.results else {}
        verdict = judge_outputs(ctx.spec, golden, run.outputs, producers, names, ctx.say)
        checks += verdict.checks
        per_output, failing, undefined = verdict.per_output, verdict.failing, verdict.undefined
        lat = sorted(run.seconds_per_inference)
        metrics = {"outputs": per_output, "latency_ms_median": round(1000 * lat[len(lat) // 2], 3),
                   "samples": len(feeds), "backend": ctx.backend.name}
        if verdict.detected:
            metrics["packed_parts_detected"], metrics["packed_parts_axis"] = verdict.detected, verdict.axes
        task, task_checks, task_failing = validate_task(ctx, golden, run.outputs, work)
        arts = {"outputs": "outputs.npz", "metrics": "metrics.json"}
        if task is not None:
            metrics["task"], arts["answers"] = task, "answers.json"
            if task.get("sample_plot"):
                arts["task_sample"] = task["sample_plot"]
            checks += task_checks
        write_json(work / "metrics.json", metrics)
        res = self.result(arts, checks, metrics)
        if failing or task_failing:
            msg = []
            if failing:
                said = [undefined[n] for n in failing if n in undefined]
                msg.append(f"{', '.join(failing)} below threshold on {ctx.backend.name} "
                           f"({'; '.join(said + [worst_message(per_output, failing)])})")
            if task_failing:
                msg.append(f"task metric(s) {', '.join(task_failing)} below threshold on {ctx.backend.name}")
            # a task answer reads every output, so with only the task failing every output is a suspect
            raise StageFailed(Failure(self.name, FailureKind.ACCURACY, "; ".join(msg),
                                      details={"failing_outputs": failing or list(per_output), "metrics": per_output,
                                               "failing_task_metrics": task_failing}), checks, metrics)
        return res

    @staticmethod
    def _interface(golden: dict, got: dict) -> list[Check]:
        import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
        exp = {k: list(v.shape) for k, v in golden.items()}
        have = {k: list(np.asarray(v).shape) for k, v in got.items()}
        return [Check("output names and shapes match the golden outputs", exp == have, have, exp)]


@dataclass
class OutputVerdict:
    """Every output (or packed part) judged on every sample; `failing` lists the labels that fail."""

    per_output: dict[str, dict] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)
    undefined: dict[str, str] = field(default_factory=dict)  # label → why its cosine is undefined
    detected: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # packed parts found, not declared
    axes: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failing


def judge_outputs(spec, golden: list[dict], outputs: list[dict], producers: dict[str, "OutputProducer"],
                  names: list[str] | None = None, say=lambda m: None) -> OutputVerdict:
    """The definition's thresholds on outputs against the golden ones, as validate judges the
    device: the repair planner judges the CPU QDQ simulation with the same function, so a
    candidate screened there is held to the bar the device will be held to."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    v = OutputVerdict()
    for name in golden[0]:
        th = spec.check_for(name)
        # an output may pack quantities of different scale (a detector's boxes and scores):
        # each part is checked on its own, so the small one cannot hide in the big one; the
        # definition may declare the parts, else they are found in the golden outputs
        declared, axis = th.parts, th.axis
        if not declared:
            made_by = producers.get(name)
            concat = made_by is not None and made_by.op == "Concat"
            if concat and made_by.axis is not None:  # a Concat says along which axis it packed
                axis = made_by.axis % np.asarray(golden[0][name]).ndim
            declared = packed_parts([g[name] for g in golden], axis, concat=concat)
            if declared:
                v.detected[name] = {k: list(p) for k, p in declared.items()}
                v.axes[name] = axis
                say(f"{name}: packed slices of different scale found along axis {axis}, checked as "
                    f"{', '.join(f'{k} [{lo}, {hi})' for k, (lo, hi) in declared.items())}")
        parts = {f"{name}.{part}": (lambda a, lo=lo, hi=hi, ax=axis: np.take(a, range(lo, hi), axis=ax))
                 for part, (lo, hi) in declared.items()} or {name: (lambda a: a)}
        for label, cut in parts.items():
            refs, gots = [cut(g[name]) for g in golden], [cut(o[name]) for o in outputs]
            m, out_checks = check_output(label, refs, gots, th, names)
            if _nan(m["cosine"]):
                v.undefined[label] = why_undefined(label, refs, gots)
            v.per_output[label] = {k: _r(x) for k, x in m.items()}
            v.checks += out_checks
            if not all(c.passed for c in out_checks):
                v.failing.append(label)
    return v


def check_output(label: str, refs: list, gots: list, th, names: list[str] | None = None) -> tuple[dict, list[Check]]:
    """Every threshold on every sample: a metric's value is its worst sample's (which one is
    recorded), the pooled figure over all samples sits beside it."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    pooled = M.summary(M.concat(refs), M.concat(gots))
    each = M.per_sample(refs, gots)
    m: dict = {}
    for metric, higher in M.HIGHER_IS_BETTER.items():
        values = [e[metric] for e in each]
        i = M.worst_index(values, higher)
        m[metric], m[f"{metric}_pooled"], m[f"{metric}_worst_sample"] = values[i], pooled[metric], i
    i = m["cosine_worst_sample"]
    m["worst_sample"] = i
    if names and i < len(names):
        m["worst_sample_file"] = names[i]
    m["cosine_per_sample"] = [_r(e["cosine"]) for e in each]
    why = M.undefined_cosine(refs[i], gots[i]) if _nan(m["cosine"]) else ""
    if why:
        m["cosine_undefined"] = why

    def detail(metric: str) -> str:
        j = m[f"{metric}_worst_sample"]
        where = f"sample {j}" + (f" ({names[j]})" if names and j < len(names) else "")
        undefined = f", cosine undefined: {why}" if metric == "cosine" and why else ""
        return f"worst: {where}{undefined}; pooled over {len(each)}: {_r(m[metric + '_pooled'])}"

    checks = [Check(f"{label} cosine", _ok(m["cosine"], th.cosine_min), _r(m["cosine"]), th.cosine_min,
                    detail("cosine"))]
    if th.sqnr_min_db is not None:
        checks.append(Check(f"{label} SQNR dB", _ok(m["sqnr_db"], th.sqnr_min_db), _r(m["sqnr_db"]), th.sqnr_min_db,
                            detail("sqnr_db")))
    if th.psnr_min_db is not None:
        checks.append(Check(f"{label} PSNR dB", _ok(m["psnr_db"], th.psnr_min_db), _r(m["psnr_db"]), th.psnr_min_db,
                            detail("psnr_db")))
    if th.max_abs_max is not None:
        checks.append(Check(f"{label} max-abs", _ok(m["max_abs"], th.max_abs_max, False), _r(m["max_abs"]),
                            th.max_abs_max, detail("max_abs")))
    if th.topk:
        agree = [M.topk_agreement(r, g, th.topk) for r, g in zip(refs, gots)]
        j = int(np.argmin(agree))
        m[f"top{th.topk}_agreement"] = float(np.mean(agree))
        m[f"top{th.topk}_agreement_worst"], m[f"top{th.topk}_agreement_worst_sample"] = agree[j], j
        where = f"sample {j}" + (f" ({names[j]})" if names and j < len(names) else "")
        checks.append(Check(f"{label} top-{th.topk} agreement", _ok(float(agree[j]), th.topk_agreement_min),
                            _r(float(agree[j])), th.topk_agreement_min,
                            f"worst: {where}; mean over {len(agree)}: {_r(float(np.mean(agree)))}"))
    return m, checks


# channel groups whose magnitudes differ this much (no overlap) are checked as separate parts;
# a Concat producing the output is strong evidence of packing, so less is asked of the ranges then:
# 10× apart leaves the small part fewer than 26 of 256 8-bit steps under one shared scale (silero-vad's
# state packs LSTM h and c along axis 0, ×20 apart; nudenet's YOLO head boxes and scores, ×350)
PACKED_RATIO, PACKED_RATIO_CONCAT = 1000.0, 10.0


def packed_parts(golden: list[np.ndarray], axis: int, concat: bool = False) -> dict[str, tuple[int, int]]:
    """Contiguous channel groups along `axis` of very different scale (pixels vs probabilities in
    one YOLO head tensor [B, 4 + classes, anchors]), split where the scales part the most.

    Only outputs with a channel axis and at least one more (rank ≥ 3) are looked at, and every
    channel must carry a signal: a zero channel is a different problem, not a scale."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    a = np.stack([np.asarray(g, dtype=np.float64) for g in golden])
    ax = axis + 1 if axis >= 0 else a.ndim + axis
    if a.ndim < 4 or not 0 < ax < a.ndim or not 2 <= a.shape[ax] <= 4096:
        return {}
    n = a.shape[ax]
    scale = np.max(np.abs(np.moveaxis(a, ax, 0).reshape(n, -1)), axis=1)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        return {}
    best, cut = PACKED_RATIO_CONCAT if concat else PACKED_RATIO, 0
    for k in range(1, n):
        head, tail = scale[:k], scale[k:]
        r = max(head.min() / tail.max(), tail.min() / head.max())
        if r >= best:
            best, cut = r, k
    return {f"ch{0}-{cut}": (0, cut), f"ch{cut}-{n}": (cut, n)} if cut else {}


@dataclass(frozen=True)
class OutputProducer:
    """The op that makes a graph output, and for a Concat the axis it joins along."""

    op: str
    axis: int | None = None


def output_producers(model_path: Path) -> dict[str, OutputProducer]:
    """The producer of each of the model's original outputs (read without weights). An output a
    graph rule moved to the host (split-packed-output moves the packing Concat there) is made by
    the host part, so it is looked up there: after the split it is still a packed output to check."""
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph

    from bot.graph.host_part import host_postprocess, part_bytes  # deferred with onnx

    try:
        model = onnx.load(str(model_path), load_external_data=False)
        graphs = [model.graph]
        host = host_postprocess(model)
        if host:
            graphs += [onnx.load_from_string(part_bytes(p)).graph for p in host["parts"]]
    except Exception:  # noqa: BLE001 — the hint is optional
        return {}
    made_by = {}
    for g in graphs:
        for n in g.node:
            axis = next((a.i for a in n.attribute if a.name == "axis"), 0) if n.op_type == "Concat" else None
            made_by.update({o: OutputProducer(n.op_type, axis) for o in n.output})
    finals = host["final_outputs"] if host else [o.name for o in model.graph.output]
    return {o: made_by.get(o, OutputProducer("")) for o in finals}


def sample_names(spec, n: int) -> list[str]:
    """The file each validation sample came from, when the definition gives sample files."""
    files = [i.files for i in spec.inputs if i.files]
    return [Path(files[0][k]).name for k in range(n)] if files and len(files[0]) >= n else []


def worst_message(per_output: dict, failing: list[str]) -> str:
    """The worst sample of the worst failing output, by cosine; an undefined cosine says why."""
    def key(label):
        c = per_output[label].get("cosine")
        return -math.inf if c is None or _nan(c) else c

    label = min(failing, key=key)
    m = per_output[label]
    where = f"sample {m.get('worst_sample', 0)}" + (f" ({m['worst_sample_file']})" if m.get("worst_sample_file") else "")
    if m.get("cosine_undefined") or _nan(m.get("cosine")):
        return f"worst: {label} {where}, cosine undefined: {m.get('cosine_undefined', 'a zero output')}"
    return f"worst cosine {m.get('cosine')} on {label} {where}; pooled {m.get('cosine_pooled')}"


def why_undefined(label: str, refs: list, gots: list) -> str:
    """Cosine is undefined when one side has no direction: say which side is constant, and at what."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    def constant(arrays) -> float | None:
        flat = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
        if flat.size and np.all(flat == flat[0]):
            return float(flat[0])
        return None

    got, ref = constant(gots), constant(refs)
    if got is not None:
        return f"the deployed output {label} is constant: {got:g} for every sample (cosine undefined)"
    if ref is not None:
        return f"the golden output {label} is constant: {ref:g} for every sample (cosine undefined)"
    return f"cosine of {label} is undefined (an output is not finite)"


def _nan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _r(v):
    if isinstance(v, float) and math.isfinite(v):
        return round(v, 6)
    return v
