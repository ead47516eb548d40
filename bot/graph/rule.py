"""What a graph rule is: an id, the refusals it answers, and a rewrite of an ONNX model.

A rule is a pattern → replacement written with onnxscript's rewriter (a maintained ONNX IR and
pattern library) wherever a pattern fits, else a function over the model; it says which rejected
ops / reasons it answers, so the repair loop can propose it from a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import onnx
from onnxscript.rewriter import pattern

from bot.graph.irutil import to_ir, to_proto


@dataclass(frozen=True)
class GraphRule:
    id: str
    summary: str  # one line: what it rewrites into what, and why the HTP needs it
    ops: tuple[str, ...]  # ONNX op types whose rejection it answers
    reasons: tuple[str, ...] = ()  # substrings of the EP's REASON text it answers ('' = any)
    rewrite: Callable[[onnx.ModelProto], tuple[onnx.ModelProto, int]] = field(default=None, repr=False)
    #: onnxscript pattern rules; a rule given only these rewrites with them
    patterns: tuple = field(default=(), repr=False)
    #: also answers an accuracy failure whose device-side localization points at one of `ops`
    #: (the device places the op but computes it wrong)
    device_numerics: bool = False
    #: also answers an accuracy failure where, in the CPU QDQ localization, one of `ops` by itself
    #: loses some sample (`losing_on_some_sample`): the op's quantized form loses it (a squared
    #: tensor's range), which the device reproduces; the rule rewrites the form, not the bits
    quantization_numerics: bool = False
    #: also answers an accuracy failure on a graph output produced by one of these ops
    #: (the output's form, not an op inside the graph, loses the accuracy)
    output_ops: tuple[str, ...] = ()

    def __post_init__(self):
        if self.rewrite is None and self.patterns:
            object.__setattr__(self, "rewrite", lambda model: apply_rules(model, list(self.patterns)))

    def answers(self, op: str, reason: str) -> bool:
        return op in self.ops and (not self.reasons or any(r.lower() in reason.lower() for r in self.reasons))


def apply_rules(model: onnx.ModelProto, rules: Sequence[pattern.RewriteRule], *, commute: bool = False
                ) -> tuple[onnx.ModelProto, int]:
    """Apply pattern → replacement rules; returns the model and how many places were rewritten."""
    m = to_ir(model)
    count = pattern.RewriteRuleSet(list(rules), commute=commute).apply_to_model(m)
    return (to_proto(m), count) if count else (model, 0)
