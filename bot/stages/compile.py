"""Stage 6, compile: the graph to deploy → what the device loads (a QNN context binary).

On the default backend this is an EPContext model plus its `.bin`, prepared for the target's HTP
arch and SoC with CPU fallback disabled, so success means every node is on the HTP.
"""

from __future__ import annotations

from pathlib import Path

from bot.backends.base import CompileRequest
from bot.records import Check, StageResult
from bot.stage_options import QuantizeOptions
from bot.stages._onnx import stage_feeds
from bot.stages.base import Stage, StageContext
from bot.targets import SOCS


class CompileStage(Stage):
    name = "compile"
    depends_on = ("target", "quantization", "calibration.method")

    def run(self, ctx: StageContext, work: Path) -> StageResult:
        q = ctx.results["quantize"]
        # what the quantize stage used (it resolved the definition's choice and a repair's); a float
        # fp16 graph records neither, and the same resolution (`QuantizeOptions`) stands in for it
        opts = ctx.opts(QuantizeOptions)
        per_channel = q.metrics.get("per_channel", opts.per_channel_for(ctx.spec))
        calibrate_method = q.metrics.get("calibrate_method", opts.calibrate_method_for(ctx.spec))
        # the SDK quantizer reads per-channel from the target
        target = ctx.spec.target.model_copy(update={"per_channel": per_channel})
        req = CompileRequest(
            # AIMET's CLE/AdaRound change weights: the SDK converts the float graph its encodings belong to
            float_onnx=ctx.artifact("quantize", "aimet_float") if "aimet_float" in q.artifacts else ctx.artifact("optimize", "onnx"),
            deploy_onnx=ctx.artifact("quantize", "onnx"),
            target=target,
            out_dir=work,
            calibration=stage_feeds(ctx, "calibration"),
            encodings=ctx.artifact("quantize", "encodings") if "encodings" in q.artifacts else None,
            calibration_method=calibrate_method,
            model_name=ctx.spec.name,
        )
        ctx.say(f"preparing the graph for HTP v{SOCS[target.soc].htp_arch} ({target.soc})")
        compiled = ctx.backend.compile(req)
        files = {p.name: p.name for p in compiled.files}
        binaries = [p for p in compiled.files if p.suffix in (".bin", ".dlc")]
        checks = [Check("context binary written", bool(binaries), [p.name for p in binaries]),
                  Check("all nodes on the backend (CPU fallback disabled)", True)]
        metrics = {"format": compiled.format, "prepare_seconds": round(compiled.prepare_seconds, 3),
                   "binary_bytes": sum(p.stat().st_size for p in binaries), "htp_arch": SOCS[target.soc].htp_arch,
                   "soc": target.soc, "backend": ctx.backend.name}
        return self.result({"entry": compiled.entry.name, **files}, checks, metrics)
