"""ONNX graph rewrites: small declarative rules, one module each, one registry.

Each rule is a pattern → replacement written with onnxscript's rewriter (a maintained ONNX IR
and pattern library) wherever a pattern fits, and says which rejected ops / reasons it answers.
The optimize stage applies the rules the repair loop chose, by id, in the order given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import onnx

from bot.errors import BadInput


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
    #: also answers an accuracy failure on a graph output produced by one of these ops
    #: (the output's form, not an op inside the graph, loses the accuracy)
    output_ops: tuple[str, ...] = ()

    def __post_init__(self):
        if self.rewrite is None and self.patterns:
            from bot.repair.graph._util import apply_rules

            object.__setattr__(self, "rewrite", lambda model: apply_rules(model, list(self.patterns)))

    def answers(self, op: str, reason: str) -> bool:
        return op in self.ops and (not self.reasons or any(r.lower() in reason.lower() for r in self.reasons))


RULES: dict[str, GraphRule] = {}


def register(rule: GraphRule) -> GraphRule:
    RULES[rule.id] = rule
    return rule


def apply_rewrites(model: onnx.ModelProto, ids: list[str]) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Apply rules in order; returns the model and how many places each rule rewrote."""
    _load_rules()
    counts = {}
    for rid in ids:
        if rid not in RULES:
            raise BadInput(f"unknown graph rewrite {rid!r}; known: {sorted(RULES)}", where="repairs")
        model, counts[rid] = RULES[rid].rewrite(model)
    return model, counts


def _load_rules() -> None:
    """Import every rule module in this package so each registers itself."""
    import importlib
    import pkgutil

    for m in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{m.name}")


def all_rules() -> dict[str, GraphRule]:
    _load_rules()
    return RULES
