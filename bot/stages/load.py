"""Stage 1, load: build the module, make sample inputs, record golden FP32 outputs.

Writes `samples.npz` (validation inputs), `golden.npz` (FP32 outputs), `calibration.npz`.
Passes when the module runs on inputs of the declared shapes and returns finite outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bot import samples as S
from bot.errors import BadInput
from bot.records import Check, StageResult
from bot.stages._model import build_module, call, flatten_outputs, load_callable
from bot.stages.base import Stage, StageContext


class LoadStage(Stage):
    name = "load"
    depends_on = ("entry", "onnx", "inputs", "outputs", "calibration", "validation.samples", "validation.seed")
    reads_model_files = True

    def run(self, ctx: StageContext, work: Path) -> StageResult:
        spec, folder = ctx.spec, ctx.model_dir
        inputs = self._sample_inputs(ctx)
        calib = self._calibration(ctx)
        golden = [self._forward(ctx, s) for s in inputs]
        n_out = len(golden[0])
        if spec.outputs and len(spec.outputs) != n_out:
            raise BadInput(f"outputs: the definition names {len(spec.outputs)} output(s) "
                           f"({', '.join(spec.outputs)}) but the model returns {n_out}",
                           where=str(folder / "aipc.yaml"))
        names = spec.outputs or [f"output_{i}" if n_out > 1 else "output" for i in range(n_out)]
        golden_named = [dict(zip(names, g)) for g in golden]
        S.save(work / "samples.npz", inputs)
        S.save(work / "golden.npz", golden_named)
        S.save(work / "calibration.npz", calib)
        finite = all(np.all(np.isfinite(a)) for g in golden for a in g)
        checks = [Check("golden outputs are finite", finite)]
        metrics = {"outputs": {n: list(a.shape) for n, a in golden_named[0].items()},
                   "samples": len(inputs), "calibration_samples": len(calib)}
        return self.result({"samples": "samples.npz", "golden": "golden.npz", "calibration": "calibration.npz"},
                           checks, metrics)

    # -- helpers ---------------------------------------------------------------------------
    def _sample_inputs(self, ctx: StageContext) -> list[S.Sample]:
        spec, folder = ctx.spec, ctx.model_dir
        if any(i.files for i in spec.inputs):
            n = min(len(i.files) for i in spec.inputs)
            out = [{i.name: self._npy(folder, i, i.files[k], f"inputs[{j}].files[{k}]")
                    for j, i in enumerate(spec.inputs)} for k in range(n)]
            return out[: spec.validation.samples] or out
        return S.random_inputs(spec.inputs, spec.validation.samples, spec.validation.seed)

    @staticmethod
    def _npy(folder: Path, ispec, file: str, field: str) -> np.ndarray:
        path = folder / file
        if not path.exists():
            raise BadInput(f"sample file {file!r} not found", where=f"{folder / 'aipc.yaml'} ({field})")
        arr = np.load(path)
        if list(arr.shape) != ispec.shape:
            raise BadInput(f"sample {file} has shape {list(arr.shape)}, the input {ispec.name!r} declares "
                           f"{ispec.shape}", where=f"{folder / 'aipc.yaml'} ({field})")
        return arr.astype(S.NP_DTYPES[ispec.dtype])

    def _calibration(self, ctx: StageContext) -> list[S.Sample]:
        c, folder = ctx.spec.calibration, ctx.model_dir
        if c.generator:
            fn = load_callable(folder, c.generator, "calibration.generator")
            got = call(folder, lambda: list(fn(c.samples)), what=f"the calibration generator {c.generator}")
            out = [{k: np.asarray(v) for k, v in s.items()} for s in got[: c.samples]]
        elif c.files:
            out = []
            for f in c.files:
                with np.load(folder / f) as z:
                    out.append({k: z[k] for k in z.files})
        else:
            out = S.random_inputs(ctx.spec.inputs, c.samples, c.seed)
        expected = {i.name: i.shape for i in ctx.spec.inputs}
        for k, s in enumerate(out):
            got = {n: list(a.shape) for n, a in s.items()}
            if got != expected:
                raise BadInput(f"calibration sample {k} has inputs {got}, the definition declares {expected}",
                               where=f"{folder / 'aipc.yaml'} (calibration)")
        return out

    def _forward(self, ctx: StageContext, sample: S.Sample) -> list[np.ndarray]:
        spec, folder = ctx.spec, ctx.model_dir
        if spec.onnx:
            import onnxruntime as ort

            try:
                sess = ort.InferenceSession(str(folder / spec.onnx), providers=["CPUExecutionProvider"])
                return sess.run(None, sample)
            except Exception as e:
                raise BadInput(f"the ONNX file cannot be run on the CPU: {e}".split("\n")[0],
                               where=str(folder / spec.onnx)) from None
        import torch

        module = getattr(self, "_module", None) or build_module(folder, spec.entry)
        self._module = module
        args = [torch.from_numpy(sample[i.name]) for i in spec.inputs]
        with torch.no_grad():
            out = call(folder, lambda: module(*args), what=f"the model's forward on inputs "
                       f"{[list(a.shape) for a in args]}")
        return flatten_outputs(out)
