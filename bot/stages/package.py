"""Stage 8, package: what an app needs to run the model, and proof that it runs.

Writes `interface.json` (I/O names, shapes, dtypes, layout, quantization parameters, target),
the compiled files, and `run.py`, a standalone script that runs the context binary (and, when a
repair moved the graph's tail to the host, `host_part_<k>.onnx`, which run.py runs on the CPU after it). With a
`data:` / `task:` section the model's preprocess and postprocess files are packaged too and `run.py FILE…`
reads data files through them. Passes when `run.py`, in a child process, reproduces the validate stage's
outputs for the first sample (from its data file, when there is one, and its answer too).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from bot import samples as S
from bot.errors import BadInput
from bot.paths import inside
from bot.records import Check, Failure, FailureKind, StageFailed, StageResult, built_precision
from bot.stages._onnx import stage_feeds
from bot.stages.base import Stage, StageContext
from bot.targets import SOCS

RUN_SCRIPT = Path(__file__).parent / "assets" / "run_context_binary.py"
#: modules run.py imports from beside itself: the bot's own, dependency-free beyond numpy, so the
#: deployment's answers are made JSON the way the bot's are
RUN_HELPERS = (Path(__file__).parents[1] / "plain_json.py",)


class PackageStage(Stage):
    name = "package"
    depends_on = ("inputs", "outputs", "target", "data.preprocess", "task.postprocess")

    @classmethod
    def files_read(cls, spec) -> list[str]:
        return _entry_files(spec)

    def run(self, ctx: StageContext, work: Path) -> StageResult:
        comp, cdir = ctx.results["compile"], ctx.dirs["compile"]
        for f in set(comp.artifacts.values()):
            shutil.copyfile(cdir / f, work / f)
        shutil.copyfile(RUN_SCRIPT, work / "run.py")
        for helper in RUN_HELPERS:
            shutil.copyfile(helper, work / helper.name)
        iface = self._interface(ctx, comp.artifacts["entry"])
        from bot.graph.host_part import host_part_of, part_bytes  # deferred: onnx (~0.4 s); a cached run opens no graph, for packaging only

        host = host_part_of(ctx.artifact("quantize", "onnx"))
        host_files = {}
        if host:  # the tail moved off the device ships as small CPU models run.py applies in order
            iface["host_postprocess"] = {"final_outputs": host["final_outputs"], "parts": []}
            for k, part in enumerate(host["parts"]):
                name = f"host_part_{k}.onnx"
                (work / name).write_bytes(part_bytes(part))
                host_files[name] = name
                iface["host_postprocess"]["parts"].append(
                    {"file": name, "ops": part["ops"], "inputs": [i["name"] for i in part["inputs"]],
                     "outputs": [o["name"] for o in part["outputs"]]})
        entry_files = self._entry_points(ctx, work, iface)
        (work / "interface.json").write_text(json.dumps(iface, indent=2) + "\n")
        fmt = comp.metrics.get("format", "")
        checks = [self._smoke(ctx, work) if fmt == "qnn-epcontext" else
                  Check("run.py smoke run", True, "not run", detail=f"run.py runs EPContext models; {fmt} runs with "
                        "the SDK's own runner (qnn-net-run / snpe-net-run), which validate already exercised")]
        if not checks[0].passed:
            raise StageFailed(Failure(self.name, FailureKind.INTERFACE_MISMATCH,
                                      "the packaged run script does not reproduce the validated outputs",
                                      log=checks[0].detail), checks)
        arts = {"interface": "interface.json", "run_script": "run.py", **{h.name: h.name for h in RUN_HELPERS},
                **{f: f for f in comp.artifacts.values()},
                **host_files, **entry_files}
        return self.result(arts, checks, {"files": sorted(arts.values())})

    def _interface(self, ctx: StageContext, entry: str) -> dict:
        import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
        spec = ctx.spec
        enc = {}
        if "encodings" in ctx.results["quantize"].artifacts:
            enc = json.loads(ctx.artifact("quantize", "encodings").read_text())
        golden = S.load(ctx.artifact("load", "golden"))[0]
        deployed = onnx.load(str(ctx.artifact("quantize", "onnx")), load_external_data=False)
        out_enc = {}
        for node in deployed.graph.node:  # an output's encoding is that of the tensor its DQ reads
            if node.op_type == "DequantizeLinear" and node.output[0] in golden:
                src = next((n.input[0] for n in deployed.graph.node if node.input[0] in n.output), None)
                out_enc[node.output[0]] = enc.get(src) if src else None
        soc = SOCS[spec.target.soc]
        precision = built_precision(ctx.results.get("quantize"), spec.target.precision)
        unused = set(ctx.results["export"].metrics.get("unused_inputs", [])) if "export" in ctx.results else set()
        return {
            "model": spec.name,
            "entry": entry,
            "target": {"runtime": spec.target.runtime, "backend": spec.target.backend, "soc": soc.name,
                       "soc_model": soc.soc_model, "htp_arch": soc.htp_arch, "precision": precision},
            "inputs": [{"name": i.name, "shape": i.shape, "dtype": i.dtype, "layout": i.layout or _layout(i.shape),
                        "range": list(i.range), "quantization": enc.get(i.name),
                        **({"unused": True, "note": "the model does not read it; the deployed graph has no such input"}
                           if i.name in unused else {})} for i in spec.inputs],
            "outputs": [{"name": n, "shape": list(a.shape), "dtype": str(a.dtype), "layout": _layout(list(a.shape)),
                         "quantization": out_enc.get(n)} for n, a in golden.items()],
            "io_quantization": "host (float I/O; the graph quantizes its inputs and dequantizes its outputs)",
        }

    @staticmethod
    def _entry_points(ctx: StageContext, work: Path, iface: dict) -> dict[str, str]:
        """Copy the preprocess / postprocess files beside run.py and name them in the interface."""
        spec, sources, arts = ctx.spec, {}, {}
        refs = {"preprocess": (spec.data.preprocess if spec.data else None, "data.preprocess"),
                "postprocess": (spec.task.postprocess if spec.task else None, "task.postprocess")}
        for role, (ref, fld) in refs.items():
            if not ref:
                continue
            file, _, func = ref.partition(":")
            src = inside(ctx.model_dir, file, f"{ctx.model_dir / 'aipc.yaml'} ({fld})")
            name = src.name
            if (name == "interface.json" or (work / name).exists()) and name not in sources:  # run.py, the binary
                raise BadInput(f"{fld}: {file} would overwrite the package's own {name}; rename it",
                               where=str(ctx.model_dir / "aipc.yaml"))
            if sources.setdefault(name, src) != src:
                raise BadInput(f"{fld}: {file} and another packaged file are both named {name}; rename one",
                               where=str(ctx.model_dir / "aipc.yaml"))
            shutil.copyfile(src, work / name)
            arts[f"{role}_file"] = name
            iface.setdefault("data", {})[role] = f"{name}:{func}"
        return arts

    def _smoke(self, ctx: StageContext, work: Path) -> Check:
        import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
        expected = S.load(ctx.artifact("validate", "outputs"))[0]
        data = json.loads(ctx.artifact("load", "data").read_text()) if "data" in ctx.results["load"].artifacts else {}
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            if data.get("validation"):  # the first validation file, through the packaged preprocess
                file = data["validation"][0]
                args, got_dir = [str(inside(ctx.model_dir, file, "data.validation"))], out / Path(file).stem
            else:
                args, got_dir = [], out
                for name, arr in stage_feeds(ctx, "samples")[0].items():
                    np.save(Path(tmp) / f"{name.replace('/', '_')}.npy", arr)
                    args += ["--input", f"{name}={Path(tmp) / (name.replace('/', '_') + '.npy')}"]
            proc = subprocess.run([sys.executable, str(work / "run.py"), *args, "--out", str(out)],
                                  capture_output=True, text=True, timeout=1800, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            if proc.returncode != 0:
                how = (f"killed by signal {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
                       else f"exited {proc.returncode}")
                return Check("run.py reproduces the validated outputs", False,
                             detail=f"run.py {' '.join(args[:1])} {how}\n{proc.stderr[-1500:]}".strip())
            diffs = {n: float(np.max(np.abs(np.load(got_dir / f"{n}.npy") - v))) for n, v in expected.items()}
            answer = (json.loads((got_dir / "answer.json").read_text()) if (got_dir / "answer.json").is_file()
                      else None)
        ok = all(d <= 1e-5 * max(1.0, float(np.max(np.abs(expected[n])))) for n, d in diffs.items())
        if "answers" in ctx.results["validate"].artifacts and ctx.spec.task and ctx.spec.task.postprocess:
            validated = json.loads(ctx.artifact("validate", "answers").read_text())["samples"][0]["deployed"]
            same = answer == validated
            return Check("run.py reproduces the validated outputs and answer", ok and same,
                         {**diffs, "answer": "same" if same else f"{answer!r} != {validated!r}"[:300]}, 1e-5)
        return Check("run.py reproduces the validated outputs", ok, diffs, 1e-5)


def _layout(shape: list[int]) -> str:
    return "NCHW" if len(shape) == 4 else ""


def _entry_files(spec) -> list[str]:
    refs = [spec.data.preprocess if spec.data else None, spec.task.postprocess if spec.task else None]
    return sorted({r.split(":")[0] for r in refs if r})
