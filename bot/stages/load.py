"""Stage 1, load: build the module, make sample inputs, record golden FP32 outputs.

Writes `samples.npz` (validation inputs), `golden.npz` (FP32 outputs), `calibration.npz`, and with a
`data:` section `data.json` (which files fed calibration and validation, and the validation labels).
Passes when the module runs on inputs of the declared shapes and returns finite outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from bot import datafiles as D
from bot import samples as S
from bot.cpu_session import as_written
from bot.errors import BadInput
from bot.model_code import build_module, call, flatten_outputs, load_callable
from bot.records import StageFailed, StageResult
from bot.spec.loader import check_output_names
from bot.stages._files import finite_checks, load_npy, load_npz
from bot.stages._onnx import graph_output_names
from bot.stages.base import Stage, StageContext
from bot.store import write_json


class LoadStage(Stage):
    name = "load"
    depends_on = ("entry", "onnx", "inputs", "outputs", "calibration", "validation.samples", "validation.seed",
                  "data")
    reads_model_files = True

    def run(self, ctx: StageContext, work: Path) -> StageResult:
        import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
        spec, folder = ctx.spec, ctx.model_dir
        files = D.resolve(spec.data, folder) if spec.data else None
        if files and files.made:
            ctx.say(f"{spec.data.make} made the data files (seed {spec.data.seed})")
        inputs = self._sample_inputs(ctx, files)
        calib = self._calibration(ctx, files)
        golden = [self._forward(ctx, s) for s in inputs]
        n_out = len(golden[0])
        if n_out == 0:
            raise BadInput("the model's forward returned no tensors", where=str(folder / "aipc.yaml"))
        if spec.onnx:  # named and ordered as the graph's outputs
            names = graph_output_names(folder / spec.onnx, spec.outputs, f"{folder / 'aipc.yaml'} (outputs)")
        elif spec.outputs and len(spec.outputs) != n_out:
            raise BadInput(f"outputs: the definition names {len(spec.outputs)} output(s) "
                           f"({', '.join(spec.outputs)}) but the model returns {n_out}",
                           where=str(folder / "aipc.yaml"))
        else:
            names = spec.outputs or [f"output_{i}" if n_out > 1 else "output" for i in range(n_out)]
        golden_named = [dict(zip(names, g)) for g in golden]
        check_output_names(spec, names, {n: list(np.shape(a)) for n, a in golden_named[0].items()},
                           str(folder / "aipc.yaml"))
        S.save(work / "samples.npz", inputs)
        S.save(work / "golden.npz", golden_named)
        S.save(work / "calibration.npz", calib)
        checks, nonfinite = finite_checks(golden_named)
        metrics = {"outputs": {n: list(a.shape) for n, a in golden_named[0].items()},
                   "samples": len(inputs), "calibration_samples": len(calib)}
        if nonfinite:
            raise StageFailed(nonfinite, checks, metrics)
        arts = {"samples": "samples.npz", "golden": "golden.npz", "calibration": "calibration.npz"}
        if files:
            used = self._data_record(ctx, files, len(inputs), len(calib))
            write_json(work / "data.json", used)
            arts["data"] = "data.json"
            metrics.update(validation_files=used["validation"], calibration_files=used["calibration"],
                           labelled_samples=sum(v is not None for v in used["labels"] or []), data_made=files.made)
        return self.result(arts, checks, metrics)

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _validation_files(ctx: StageContext, files: D.DataFiles) -> list[str]:
        """All the validation files, unless `validation.samples` is set explicitly (then the first N)."""
        v = ctx.spec.validation
        return files.validation[: v.samples] if "samples" in v.model_fields_set else files.validation

    @staticmethod
    def _calibration_files(ctx: StageContext, files: D.DataFiles) -> list[str]:
        c = ctx.spec.calibration
        return files.calibration[: c.samples] if "samples" in c.model_fields_set else files.calibration

    def _data_record(self, ctx: StageContext, files: D.DataFiles, n_val: int, n_cal: int) -> dict:
        val = self._validation_files(ctx, files) if files.validation else []
        cal = self._calibration_files(ctx, files) if files.calibration else []
        return {"validation": val, "calibration": cal, "validation_samples": n_val, "calibration_samples": n_cal,
                "labels": D.labels(ctx.spec.data, ctx.model_dir, val) if val else None, "made": files.made}

    def _sample_inputs(self, ctx: StageContext, files: D.DataFiles | None = None) -> list[S.Sample]:
        spec, folder = ctx.spec, ctx.model_dir
        if files and files.validation:
            return D.read(spec.data, folder, self._validation_files(ctx, files), spec.inputs, "validation")
        if any(i.files for i in spec.inputs):
            n = min(len(i.files) for i in spec.inputs)
            out = [{i.name: self._npy(folder, i, i.files[k], f"inputs[{j}].files[{k}]")
                    for j, i in enumerate(spec.inputs)} for k in range(n)]
            return out[: spec.validation.samples] or out
        return S.random_inputs(spec.inputs, spec.validation.samples, spec.validation.seed)

    @staticmethod
    def _npy(folder: Path, ispec, file: str, field: str) -> np.ndarray:
        arr = load_npy(folder, file, field)
        if list(arr.shape) != ispec.shape:
            raise BadInput(f"sample {file} has shape {list(arr.shape)}, the input {ispec.name!r} declares "
                           f"{ispec.shape}", where=f"{folder / 'aipc.yaml'} ({field})")
        return arr.astype(S.NP_DTYPES[ispec.dtype])

    def _calibration(self, ctx: StageContext, files: D.DataFiles | None = None) -> list[S.Sample]:
        import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
        c, folder = ctx.spec.calibration, ctx.model_dir
        if files and files.calibration:
            out = D.read(ctx.spec.data, folder, self._calibration_files(ctx, files), ctx.spec.inputs, "calibration")
        elif c.generator:
            fn = load_callable(folder, c.generator, "calibration.generator")
            got = call(folder, lambda: list(fn(c.samples)), what=f"the calibration generator {c.generator}")
            if not got or not all(isinstance(s, dict) for s in got):
                raise BadInput(f"the calibration generator {c.generator} must yield dicts of input name → array",
                               where=f"{folder / 'aipc.yaml'} (calibration.generator)")
            out = [{str(k): np.asarray(v) for k, v in s.items()} for s in got[: c.samples]]
        elif c.files:
            out = [load_npz(folder, f, f"calibration.files[{k}]") for k, f in enumerate(c.files)]
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
            import onnxruntime as ort  # deferred: a slow import; only running a graph needs it

            try:
                sess = ort.InferenceSession(str(folder / spec.onnx), as_written(), providers=["CPUExecutionProvider"])
                return sess.run(None, sample)
            except Exception as e:
                raise BadInput(f"the ONNX file cannot be run on the CPU: {e}".split("\n")[0],
                               where=str(folder / spec.onnx)) from None
        import torch  # deferred: torch (~1 s) only where a model is built or run

        module = getattr(self, "_module", None) or build_module(folder, spec.entry)
        self._module = module
        args = [torch.from_numpy(sample[i.name]) for i in spec.inputs]
        with torch.no_grad():
            out = call(folder, lambda: module(*args), what=f"the model's forward on inputs "
                       f"{[list(a.shape) for a in args]}")
        return flatten_outputs(out, where=f"{folder / spec.entry.partition(':')[0]} (forward)")
