"""Stage 3, optimize: static shapes, opset normalisation, folding and simplification.

Simplification is onnxslim's (a maintained library: constant folding, dead-code removal, fusion,
shape inference). Graph repairs chosen by the repair loop run here too, by id, from
its options' `rewrites` (`OptimizeOptions`); `static_shapes` pins every output dimension. Writes `model.onnx`; passes when the graph is static and still
matches PyTorch on the CPU.
"""

from __future__ import annotations

from pathlib import Path

from bot import samples as S
from bot.records import Check, Failure, FailureKind, StageFailed, StageResult
from bot.stages._onnx import (correct_output_shapes, dynamic_dims, fix_input_shapes, opset, parity_checks,
                              stage_feeds)
from bot.stage_options import OptimizeOptions
from bot.stages.base import Stage, StageContext

MIN_OPSET = 13  # QNN EP's per-channel QDQ and Resize forms want ≥ 13


class OptimizeStage(Stage):
    name = "optimize"
    depends_on = ("inputs",)
    Options = OptimizeOptions

    def run(self, ctx: StageContext, work: Path) -> StageResult:
        import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
        from onnx import version_converter  # deferred with onnx

        src = ctx.artifact("export", "onnx")
        model = onnx.load(str(src))
        nodes_before = len(model.graph.node)
        fix_input_shapes(model, {i.name: i.shape for i in ctx.spec.inputs})
        if opset(model) < MIN_OPSET:
            model = version_converter.convert_version(model, MIN_OPSET)
        model, slim_refused = slim(model)
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
        golden0 = {n: list(a.shape) for n, a in S.load(ctx.artifact("load", "golden"))[0].items()}
        # a wrong static output shape (declared, or inferred from a wrong declaration) would become
        # the binary's: the shapes the model produces on the definition's inputs win
        corrected = correct_output_shapes(model, golden0)
        if corrected:
            del model.graph.value_info[:]
            model = onnx.shape_inference.infer_shapes(model, data_prop=True)
        options = ctx.opts(OptimizeOptions)
        if options.static_shapes:
            model = _fix_output_shapes(model, golden0)
        rewrites = options.rewrites
        applied: dict[str, int] = {}
        # not from bot.graph.rules: that would load the whole catalogue (onnxscript) for an exact cleanup
        from bot.graph.infinite_bounds import drop_infinite_bounds  # deferred with the graph work

        model, bounds = drop_infinite_bounds(model)  # exact on every graph, and fatal to quantization if left
        if bounds:
            applied["infinite-bound"] = bounds
        if rewrites:
            from bot.graph.rules import apply_rewrites  # deferred: loads onnxscript's rewriter, needed only with rewrites

            model, chosen = apply_rewrites(model, rewrites)
            applied |= chosen
        out = work / "model.onnx"
        onnx.save(model, str(out))
        dyn = dynamic_dims(model)
        checks = [Check("all input and output shapes static", not dyn, dyn or "static")]
        if dyn:
            raise StageFailed(Failure(self.name, FailureKind.DYNAMIC_SHAPE, f"dynamic dimensions remain: {dyn}",
                                      details={"dims": dyn}), checks)
        feeds = stage_feeds(ctx, "samples")
        golden = S.load(ctx.artifact("load", "golden"))
        parity, worst = parity_checks(out, feeds, golden, "optimized graph on CPU")
        checks += parity
        if corrected:
            checks.append(Check("output shapes as the model produces them", True, corrected))
        metrics = {"nodes_before": nodes_before, "nodes_after": len(model.graph.node), "opset": opset(model),
                   "rewrites": applied, "parity": worst,
                   **({"onnxslim_refused": slim_refused} if slim_refused else {}), **({"output_shapes_corrected": corrected} if corrected else {})}
        res = self.result({"onnx": "model.onnx"}, checks, metrics)
        if not res.passed:
            raise StageFailed(Failure(self.name, FailureKind.EXPORT_ERROR,
                                      "the optimized graph no longer matches PyTorch", details={"parity": worst}),
                              checks, metrics)
        return res


def slim(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    """onnxslim's simplification, unless it breaks the graph: then the graph as it came, and why.

    Found on Whisper's decoder step (transformers 5.23, onnxslim 0.1.98): a fusion dropped the
    attention's `q_proj(x) * scaling` Mul while its Reshape consumer kept reading the Mul's output,
    so ONNX Runtime refused the model. An unsimplified graph is slower to compile, never wrong."""
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
    import onnxslim  # deferred with onnx

    before = onnx.ModelProto()
    before.CopyFrom(model)
    slimmed = onnxslim.slim(model)
    if slimmed.ByteSize() >= onnx.checker.MAXIMUM_PROTOBUF:
        return slimmed, None  # too large for the in-memory checker; ORT's load will tell
    try:
        onnx.checker.check_model(slimmed)
    except onnx.checker.ValidationError as e:
        return before, f"onnxslim produced an invalid graph ({str(e).splitlines()[0][:200]}); kept it unsimplified"
    return slimmed, None


def _fix_output_shapes(model: onnx.ModelProto, shapes: dict[str, list[int]]) -> onnx.ModelProto:
    """Pin outputs to the shapes PyTorch produced and re-infer everything in between."""
    import onnx  # deferred: ~0.4 s to import; a fully cached run opens no graph
    for vi in model.graph.output:
        if vi.name in shapes:
            for d, v in zip(vi.type.tensor_type.shape.dim, shapes[vi.name]):
                d.Clear()
                d.dim_value = v
    del model.graph.value_info[:]
    return onnx.shape_inference.infer_shapes(model, data_prop=True)
