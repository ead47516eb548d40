"""Stage 8, package: what an app needs to run the model, and proof that it runs.

Writes `interface.json` (I/O names, shapes, dtypes, layout, quantization parameters, target),
the compiled files, and `run.py`, a standalone script that runs the context binary (and, when a
repair moved the graph's tail to the host, `host_part_<k>.onnx`, which run.py runs on the CPU after it). Passes when
`run.py`, in a child process, reproduces the validate stage's outputs for the first sample.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

from bot import samples as S
from bot.records import Check, Failure, FailureKind, StageFailed, StageResult
from bot.repair.graph._host_cut import host_part_of
from bot.stages.base import Stage, StageContext
from bot.targets import SOCS

RUN_SCRIPT = Path(__file__).parent / "assets" / "run_context_binary.py"


class PackageStage(Stage):
    name = "package"
    depends_on = ("inputs", "outputs", "target")

    def run(self, ctx: StageContext, work: Path) -> StageResult:
        comp, cdir = ctx.results["compile"], ctx.dirs["compile"]
        for f in set(comp.artifacts.values()):
            shutil.copyfile(cdir / f, work / f)
        shutil.copyfile(RUN_SCRIPT, work / "run.py")
        iface = self._interface(ctx, comp.artifacts["entry"])
        host = host_part_of(ctx.artifact("quantize", "onnx"))
        host_files = {}
        if host:  # the tail moved off the device ships as small CPU models run.py applies in order
            iface["host_postprocess"] = {"final_outputs": host["final_outputs"], "parts": []}
            for k, part in enumerate(host["parts"]):
                name = f"host_part_{k}.onnx"
                (work / name).write_bytes(base64.b64decode(part["onnx_base64"]))
                host_files[name] = name
                iface["host_postprocess"]["parts"].append(
                    {"file": name, "ops": part["ops"], "inputs": [i["name"] for i in part["inputs"]],
                     "outputs": [o["name"] for o in part["outputs"]]})
        (work / "interface.json").write_text(json.dumps(iface, indent=2) + "\n")
        fmt = comp.metrics.get("format", "")
        checks = [self._smoke(ctx, work) if fmt == "qnn-epcontext" else
                  Check("run.py smoke run", True, "not run", detail=f"run.py runs EPContext models; {fmt} runs with "
                        "the SDK's own runner (qnn-net-run / snpe-net-run), which validate already exercised")]
        if not checks[0].passed:
            raise StageFailed(Failure(self.name, FailureKind.INTERFACE_MISMATCH,
                                      "the packaged run script does not reproduce the validated outputs",
                                      log=checks[0].detail), checks)
        arts = {"interface": "interface.json", "run_script": "run.py", **{f: f for f in comp.artifacts.values()},
                **host_files}
        return self.result(arts, checks, {"files": sorted(arts.values())})

    def _interface(self, ctx: StageContext, entry: str) -> dict:
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
        return {
            "model": spec.name,
            "entry": entry,
            "target": {"runtime": spec.target.runtime, "backend": spec.target.backend, "soc": soc.name,
                       "soc_model": soc.soc_model, "htp_arch": soc.htp_arch, "precision": spec.target.precision},
            "inputs": [{"name": i.name, "shape": i.shape, "dtype": i.dtype, "layout": i.layout or _layout(i.shape),
                        "range": list(i.range), "quantization": enc.get(i.name)} for i in spec.inputs],
            "outputs": [{"name": n, "shape": list(a.shape), "dtype": str(a.dtype), "layout": _layout(list(a.shape)),
                         "quantization": out_enc.get(n)} for n, a in golden.items()],
            "io_quantization": "host (float I/O; the graph quantizes its inputs and dequantizes its outputs)",
        }

    def _smoke(self, ctx: StageContext, work: Path) -> Check:
        sample = S.load(ctx.artifact("load", "samples"))[0]
        expected = S.load(ctx.artifact("validate", "outputs"))[0]
        with tempfile.TemporaryDirectory() as tmp:
            args = []
            for name, arr in sample.items():
                np.save(Path(tmp) / f"{name.replace('/', '_')}.npy", arr)
                args += ["--input", f"{name}={Path(tmp) / (name.replace('/', '_') + '.npy')}"]
            proc = subprocess.run([sys.executable, str(work / "run.py"), *args, "--out", str(Path(tmp) / "out")],
                                  capture_output=True, text=True, timeout=1800, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            if proc.returncode != 0:
                return Check("run.py reproduces the validated outputs", False, detail=proc.stderr[-1500:])
            diffs = {n: float(np.max(np.abs(np.load(Path(tmp) / "out" / f"{n}.npy") - v))) for n, v in expected.items()}
        ok = all(d <= 1e-5 * max(1.0, float(np.max(np.abs(expected[n])))) for n, d in diffs.items())
        return Check("run.py reproduces the validated outputs", ok, diffs, 1e-5)


def _layout(shape: list[int]) -> str:
    return "NCHW" if len(shape) == 4 else ""
