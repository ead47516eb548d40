"""Stage 7, validate: run what was compiled, on the target backend, against the golden outputs.

Per output: cosine, SQNR, PSNR, max-abs, and top-k agreement for classifiers, each against the
definition's threshold (defaults from the AIPC report: cosine ≥ 0.99 float, ≥ 0.95 quantized).
Writes `outputs.npz` and `metrics.json`. A collapsed output (cosine NaN) fails.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from bot import metrics as M
from bot import samples as S
from bot.backends.base import Compiled
from bot.records import Check, Failure, FailureKind, StageFailed, StageResult
from bot.repair.graph._host_cut import complete, host_part_of
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
        feeds = S.load(ctx.artifact("load", "samples"))
        golden = S.load(ctx.artifact("load", "golden"))
        ctx.say(f"running {len(feeds)} sample(s) on {ctx.backend.name}")
        run = ctx.backend.run(compiled, feeds, ctx.spec.target)
        host = host_part_of(ctx.artifact("quantize", "onnx"))
        if host:  # a tail moved off the device runs here, as it does in the packaged run.py
            run.outputs = [complete(host, {**f, **o}) for f, o in zip(feeds, run.outputs)]
            ctx.say(f"host part: {', '.join(op for p in host['parts'] for op in p['ops'])} on the CPU")
        S.save(work / "outputs.npz", run.outputs)

        checks, per_output, failing = self._interface(golden[0], run.outputs[0]), {}, []
        undefined: dict[str, str] = {}  # label → why its cosine is undefined
        if not all(c.passed for c in checks):
            raise StageFailed(Failure(self.name, FailureKind.INTERFACE_MISMATCH,
                                      "the compiled model's outputs differ from the golden ones in name or shape",
                                      details={"expected": {k: list(v.shape) for k, v in golden[0].items()},
                                               "got": {k: list(v.shape) for k, v in run.outputs[0].items()}}), checks)
        for name in golden[0]:
            th = ctx.spec.check_for(name)
            # an output may pack quantities of different scale (a detector's boxes and scores):
            # each declared part is checked on its own, so the small one cannot hide in the big one
            parts = {f"{name}.{part}": (lambda a, lo=lo, hi=hi: np.take(a, range(lo, hi), axis=th.axis))
                     for part, (lo, hi) in th.parts.items()} or {name: (lambda a: a)}
            for label, cut in parts.items():
                refs, gots = [cut(g[name]) for g in golden], [cut(o[name]) for o in run.outputs]
                m, out_checks = self._check(label, refs, gots, th)
                if _nan(m["cosine"]):
                    undefined[label] = why_undefined(label, refs, gots)
                per_output[label] = {k: _r(v) for k, v in m.items()}
                checks += out_checks
                if not all(c.passed for c in out_checks):
                    failing.append(label)
        lat = sorted(run.seconds_per_inference)
        metrics = {"outputs": per_output, "latency_ms_median": round(1000 * lat[len(lat) // 2], 3),
                   "samples": len(feeds), "backend": ctx.backend.name}
        task, task_checks, task_failing = validate_task(ctx, golden, run.outputs, work)
        arts = {"outputs": "outputs.npz", "metrics": "metrics.json"}
        if task is not None:
            metrics["task"], arts["answers"] = task, "answers.json"
            checks += task_checks
        write_json(work / "metrics.json", metrics)
        res = self.result(arts, checks, metrics)
        if failing or task_failing:
            msg = []
            if failing:
                defined = [per_output[n]["cosine"] for n in failing if not _nan(per_output[n]["cosine"])]
                said = [undefined[n] for n in failing if n in undefined]
                said += [f"worst cosine {min(defined)}"] if defined else []
                msg.append(f"{', '.join(failing)} below threshold on {ctx.backend.name} ({'; '.join(said)})")
            if task_failing:
                msg.append(f"task metric(s) {', '.join(task_failing)} below threshold on {ctx.backend.name}")
            # a task answer reads every output, so with only the task failing every output is a suspect
            raise StageFailed(Failure(self.name, FailureKind.ACCURACY, "; ".join(msg),
                                      details={"failing_outputs": failing or list(per_output), "metrics": per_output,
                                               "failing_task_metrics": task_failing}), checks, metrics)
        return res

    @staticmethod
    def _check(label: str, refs: list, gots: list, th) -> tuple[dict, list[Check]]:
        m = M.summary(M.concat(refs), M.concat(gots))
        checks = [Check(f"{label} cosine", _ok(m["cosine"], th.cosine_min), _r(m["cosine"]), th.cosine_min)]
        if th.sqnr_min_db is not None:
            checks.append(Check(f"{label} SQNR dB", _ok(m["sqnr_db"], th.sqnr_min_db), _r(m["sqnr_db"]), th.sqnr_min_db))
        if th.psnr_min_db is not None:
            checks.append(Check(f"{label} PSNR dB", _ok(m["psnr_db"], th.psnr_min_db), _r(m["psnr_db"]), th.psnr_min_db))
        if th.max_abs_max is not None:
            checks.append(Check(f"{label} max-abs", _ok(m["max_abs"], th.max_abs_max, False), _r(m["max_abs"]),
                                th.max_abs_max))
        if th.topk:
            agree = float(np.mean([M.topk_agreement(r, g, th.topk) for r, g in zip(refs, gots)]))
            m[f"top{th.topk}_agreement"] = agree
            checks.append(Check(f"{label} top-{th.topk} agreement", _ok(agree, th.topk_agreement_min), _r(agree),
                                th.topk_agreement_min))
        return m, checks

    @staticmethod
    def _interface(golden: dict, got: dict) -> list[Check]:
        exp = {k: list(v.shape) for k, v in golden.items()}
        have = {k: list(np.asarray(v).shape) for k, v in got.items()}
        return [Check("output names and shapes match the golden outputs", exp == have, have, exp)]


def why_undefined(label: str, refs: list, gots: list) -> str:
    """Cosine is undefined when one side has no direction: say which side is constant, and at what."""
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
