"""Stage 2, export: PyTorch → ONNX.

Writes `model.onnx`. Passes when the ONNX checker and shape inference accept the graph and ONNX
Runtime on the CPU reproduces the golden outputs (cosine ≥ 0.9999, small max-abs). Repairs may
switch the exporter or the opset through its options (`ExportOptions`).
"""

from __future__ import annotations

import io
import shutil
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from bot import samples as S
from bot.model_code import build_module
from bot.quiet import native_output
from bot.records import Check, Failure, FailureKind, StageFailed, StageResult
from bot.stage_options import ExportOptions
from bot.stages._onnx import correct_output_shapes, dynamic_dims, opset, parity_checks, unused_inputs
from bot.stages.base import Stage, StageContext


class ExportStage(Stage):
    name = "export"
    depends_on = ("entry", "onnx", "inputs", "outputs", "export")
    reads_model_files = True
    Options = ExportOptions

    def run(self, ctx: StageContext, work: Path) -> StageResult:
        import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
        spec = ctx.spec
        out = work / "model.onnx"
        feeds = S.load(ctx.artifact("load", "samples"))
        golden = S.load(ctx.artifact("load", "golden"))
        exporter = ctx.opts(ExportOptions).exporter_for(spec)
        op_version = ctx.opts(ExportOptions).opset_for(spec)
        corrected: dict = {}
        if spec.onnx:
            shutil.copyfile(ctx.model_dir / spec.onnx, out)
            exporter = "file"
            corrected = self._declared_output_shapes(out, golden[0])
        else:
            self._export(ctx, feeds[0], list(golden[0]), out, exporter, op_version)
        try:
            model = onnx.load(str(out))
            onnx.checker.check_model(model, full_check=True)
        except Exception as e:
            raise StageFailed(Failure(self.name, FailureKind.EXPORT_ERROR, "the ONNX checker rejected the graph",
                                      log=str(e)[:2000])) from None
        artifacts = {"onnx": "model.onnx"}
        unused = unused_inputs(model, [i.name for i in spec.inputs])
        if unused:  # narrowed feeds for every later stage (`stage_feeds`)
            for kind in ("samples", "calibration"):
                S.save(work / f"{kind}.npz", [{k: v for k, v in s.items() if k not in unused}
                                             for s in S.load(ctx.artifact("load", kind))])
                artifacts[kind] = f"{kind}.npz"
            ctx.say(f"export: declared input(s) {', '.join(unused)} not used by the model; the {exporter} exporter "
                    "dropped them. The deployment takes the other inputs and no feed includes these.")
        checks, worst = parity_checks(out, feeds, golden, "ONNX Runtime CPU")
        checks.append(Check("ONNX checker and shape inference", True))
        if unused:  # parity above ran without them: the outputs do not depend on them
            checks.append(Check("declared inputs the graph does not use (dropped by the exporter; left out of "
                                "every feed, marked unused in interface.json)", True, unused))
        if corrected:
            checks.append(Check("declared output shapes replaced by the shapes the model produces", True, corrected))
        metrics = {"exporter": exporter, "opset": opset(model), "nodes": len(model.graph.node),
                   "dynamic_dims": dynamic_dims(model), "parity": worst}
        if corrected:
            metrics["output_shapes_corrected"] = corrected
        if unused:
            metrics["unused_inputs"] = unused
        res = self.result(artifacts, checks, metrics)
        if not res.passed:
            raise StageFailed(Failure(self.name, FailureKind.EXPORT_ERROR,
                                      "the exported graph does not reproduce PyTorch on the CPU",
                                      details={"parity": worst, "exporter": exporter}), checks, metrics)
        return res

    @staticmethod
    def _declared_output_shapes(path: Path, golden: dict) -> dict:
        """An ONNX file's wrong declared output shapes → the shapes it really produces (see
        `correct_output_shapes`); the file is rewritten only when one was wrong."""
        import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
        model = onnx.load(str(path))
        fixed = correct_output_shapes(model, {n: list(a.shape) for n, a in golden.items()})
        if fixed:
            del model.graph.value_info[:]  # inferred from the wrong declaration; re-derived downstream
            onnx.save(model, str(path))
        return fixed

    def _export(self, ctx, sample, output_names, out: Path, exporter: str, op_version: int) -> None:
        import torch  # deferred: torch (~1 s) only where a model is built or run

        module = build_module(ctx.model_dir, ctx.spec.entry)
        args = tuple(torch.from_numpy(sample[i.name]) for i in ctx.spec.inputs)
        names = [i.name for i in ctx.spec.inputs]
        chatter = io.StringIO()  # the TorchScript exporter prints whole IR graphs on failure
        try:
            with warnings.catch_warnings(), redirect_stdout(chatter), redirect_stderr(chatter), native_output() as native:
                warnings.simplefilter("ignore")
                if exporter == "dynamo":
                    prog = torch.onnx.export(module, args, input_names=names, output_names=output_names,
                                             opset_version=op_version, dynamo=True, optimize=True, verbose=False)
                    prog.save(str(out), external_data=False)
                else:
                    torch.onnx.export(module, args, str(out), input_names=names, output_names=output_names,
                                      opset_version=op_version, dynamo=False, do_constant_folding=True)
        except Exception as e:
            raise StageFailed(Failure(self.name, FailureKind.EXPORT_ERROR,
                                      f"torch.onnx.export ({exporter}, opset {op_version}) failed: "
                                      f"{type(e).__name__}: {_first_line(e)}",
                                      details={"exporter": exporter, "opset": op_version,
                                               "error_type": type(e).__name__},
                                      log=(str(e) + "\n" + chatter.getvalue() + native.text)[-3000:])) from None


def _first_line(e: Exception, limit: int = 160) -> str:
    line = (str(e).strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[:limit] + "…"
