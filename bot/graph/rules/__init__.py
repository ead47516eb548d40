"""Every graph rule, one module each, listed here explicitly (no package scan, no registration by
import side effect). The order is the catalogue's: the repair loop proposes graph repairs in it."""

from __future__ import annotations

import onnx

from bot.errors import BadInput
from bot.graph.rule import GraphRule
from bot.graph.rules import (
    batchnorm_to_mul_add,
    einsum_to_matmul,
    gelu_form,
    infinite_bound,
    int64_to_int32,
    layernorm_form,
    layernorm_last_axis,
    layernorm_moments_form,
    magnitude_form,
    mod_floor_rewrite,
    pad_value_to_concat,
    rank5_to_rank4,
    resize_to_htp,
    scatternd_to_slice_concat,
    split_packed_output,
    strip_postprocess,
)

RULES: tuple[GraphRule, ...] = (
    batchnorm_to_mul_add.RULE,
    einsum_to_matmul.RULE,
    gelu_form.RULE,
    infinite_bound.RULE,
    int64_to_int32.RULE,
    layernorm_form.RULE,
    layernorm_last_axis.RULE,
    layernorm_moments_form.RULE,
    magnitude_form.RULE,
    mod_floor_rewrite.RULE,
    pad_value_to_concat.RULE,
    rank5_to_rank4.RULE,
    resize_to_htp.RULE,
    scatternd_to_slice_concat.RULE,
    split_packed_output.RULE,
    strip_postprocess.RULE,
)

BY_ID: dict[str, GraphRule] = {r.id: r for r in RULES}
assert len(BY_ID) == len(RULES), "two graph rules share an id"


def all_rules() -> dict[str, GraphRule]:
    """Every rule by id, in catalogue order."""
    return BY_ID


def apply_rewrites(model: onnx.ModelProto, ids: list[str]) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Apply rules in order; returns the model and how many places each rule rewrote."""
    counts = {}
    for rid in ids:
        if rid not in BY_ID:
            raise BadInput(f"unknown graph rewrite {rid!r}; known: {sorted(BY_ID)}", where="repairs")
        model, counts[rid] = BY_ID[rid].rewrite(model)
    return model, counts
