"""Graph-level repairs: one catalogue entry per ONNX rewrite rule in `bot.graph`.

A rule is proposed when it answers one of the rejected nodes (op type and the EP's reason), or,
for an accuracy failure, the op of the first layer the device computes far worse than the CPU
simulation of the same quantized graph (device-side localization), or the op where the CPU
simulation itself loses one sample (rules for an op's quantized form), or the op that produces the
failing output (rules for an output's form); and has not been applied yet, and it finds something to rewrite in the graph (a dry run on the optimized
graph); the optimize stage applies it, so the pipeline re-runs from there.
"""

from __future__ import annotations

from bot.graph.rules import RULES
from bot.records import FailureKind
from bot.repair.base import Repair
from bot.repair.localize import losing_on_some_sample
from bot.stage_options import OptimizeOptions

ANSWERS = (FailureKind.OP_REJECTED, FailureKind.UNSUPPORTED_DTYPE, FailureKind.COMPILE_ERROR,
           FailureKind.ACCURACY)


def _proposer(rule):
    def propose(failure, state, ctx):
        new = _propose(failure, state, ctx)
        # a rule that would rewrite nothing in this graph is not proposed: it would spend an
        # attempt (a full re-run) to change nothing
        if new is not None and "rewrite_count" in ctx and ctx["rewrite_count"](rule.id) == 0:
            return None
        return new

    def _propose(failure, state, ctx):
        if rule.id in state.opts(OptimizeOptions).rewrites:
            return None
        if failure.kind == FailureKind.ACCURACY and rule.output_ops:
            # rules for an output's form: the failing output is produced by one of their ops
            failing = {label.split(".")[0] for label in failure.details.get("failing_outputs", [])}
            producers = ctx["output_producers"]() if "output_producers" in ctx else {}
            if any(producers.get(name) in rule.output_ops for name in failing):
                return state.appended(OptimizeOptions, "rewrites", [rule.id])
            return None
        if failure.kind == FailureKind.ACCURACY and rule.quantization_numerics:
            # rules for an op's quantized form: the CPU QDQ simulation already loses one sample at
            # one of their ops (pooled over samples, a quiet input's loss vanishes)
            if "localize" in ctx and losing_on_some_sample(ctx["localize"](), rule.ops):
                return state.appended(OptimizeOptions, "rewrites", [rule.id])
            if not rule.device_numerics:
                return None
        if failure.kind == FailureKind.ACCURACY:
            # only rules made for device numerics, and only where the device computes an op worse
            # than quantization explains; the first such layer is the cause, later ones its echo
            if not rule.device_numerics:
                return None
            div = ctx["divergent"]() if "divergent" in ctx else []
            return state.appended(OptimizeOptions, "rewrites", [rule.id]) if div and div[0].op in rule.ops else None
        if not any(rule.answers(n.op, n.reason) for n in failure.nodes):
            return None
        return state.appended(OptimizeOptions, "rewrites", [rule.id])

    return propose


REPAIRS: tuple[Repair, ...] = tuple(Repair(rule.id, "graph", ANSWERS, rule.summary, _proposer(rule),
                                           host_visible=bool(rule.output_ops or rule.quantization_numerics))
                                    for rule in RULES)
