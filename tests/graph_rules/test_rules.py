"""The rule list: every rule has the agreed id, a summary and a rewrite; stacked rules keep the host part."""

from __future__ import annotations

import onnx
import pytest

from bot.graph.host_part import KEY
from bot.graph.rules import RULES, all_rules, apply_rewrites

from ._helpers import detector

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def test_catalogue_has_the_agreed_ids():
    ids = set(all_rules())
    assert {"resize-to-htp", "einsum-to-matmul", "int64-to-int32", "rank5-to-rank4", "mod-floor-rewrite",
            "scatternd-to-slice-concat", "gelu-form", "layernorm-form", "strip-postprocess"} <= ids
    for rule in all_rules().values():
        assert rule.summary and (rule.ops or rule.output_ops) and callable(rule.rewrite)


def test_all_rules_in_sequence_keep_metadata_and_numerics():
    """The loop may stack rules: each is a no-op where it has nothing to do, and the cut description survives."""
    m = detector()
    ids = ["strip-postprocess"] + sorted(set(all_rules()) - {"strip-postprocess"})
    out, counts = apply_rewrites(m, ids)
    assert counts["strip-postprocess"] == 1 and sum(counts.values()) == 1
    assert KEY in {p.key for p in out.metadata_props}
    onnx.checker.check_model(out, full_check=True)


def test_every_rule_module_is_listed_once():
    """The list is explicit (no package scan): a new rule module that is not in RULES is never proposed."""
    import pkgutil

    import bot.graph.rules as pkg

    modules = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__))
    assert len({r.id for r in RULES}) == len(RULES) == len(modules)
    assert [getattr(pkg, m).RULE for m in modules] == list(RULES)  # in module order, as the old scan had them
    assert [r.id for r in RULES] == list(all_rules())
