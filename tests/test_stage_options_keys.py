"""Typed stage options key the stores exactly as the untyped options did, so the stages an existing
deployment has cached still hit after the change (a content-key migration with nothing to migrate).

`data/stage_keys_before_typed_options.json` was written by the code before the stages' options were
typed (`dict[str, dict[str, Any]]`: commit 25677f2, then ebf4e4b, whose compat key no longer holds the
precision and whose quantize takes `float_tensors`): for every option state the repairs and the agent
write, the key each stage of the default workflow gets, with the tool versions and the upstream
digests held fixed. Its `options` are what that code wrote into a manifest's `repair_state`, so a
deployment re-run from such a manifest is all cache hits exactly when these keys are unchanged.
A stage re-keyed since by a change of its own (its depends_on, its version) is compared by the
options' part of its key only; the stages that take options must still match whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bot.pipeline.runner import Pipeline, default_workflow, options_content
from bot.spec import load_spec
from bot.stages import REGISTRY

FIXTURE = Path(__file__).parent / "data" / "stage_keys_before_typed_options.json"
MODEL = "def build():\n    raise RuntimeError('keys only: never run')\n"
DEFINITION = {"name": "keyed", "entry": "model.py:build",
              "inputs": [{"name": "x", "shape": [1, 3, 16, 16], "range": [0, 1]}], "outputs": ["y"],
              "calibration": {"samples": 4}, "validation": {"samples": 1}}
#: each knob a repair or an agent tool writes, alone and together (values as they write them)
CASES: list[dict] = [
    {},
    {"export": {"exporter": "dynamo"}},
    {"export": {"opset": 18}},
    {"optimize": {"static_shapes": True}},
    {"optimize": {"rewrites": ["int64-to-int32", "gelu-form"]}},
    {"quantize": {"weight_type": "QInt8"}},
    {"quantize": {"min_real_range": 1e-12}},
    {"quantize": {"overrides": {"conv1_out": {"quant_type": "QUInt16"}, "relu_out": {"quant_type": "QUInt16"}}}},
    {"quantize": {"precision": "w8a16"}},
    {"quantize": {"per_channel": True}},
    {"quantize": {"per_channel": False, "calibrate_method": "percentile"}},
    {"quantize": {"precision": "fp16"}},
    {"quantize": {"per_tensor_weights": ["fc.weight", "head.weight"]}},
    {"quantize": {"float_tensors": ["pitch_out", "conv3_out"]}},
    {"quantize": {"engine": "aimet", "techniques": ["cle", "adaround"]}},
    {"quantize": {"engine": "aimet", "techniques": ["seqmse"], "adaround_iterations": 200, "seqmse_candidates": 10}},
    {"quantize": {}},
    {"quantize": {"bias_correction": "analytic"}},
    {"export": {"exporter": "dynamo", "opset": 18}, "optimize": {"rewrites": ["infinite-bound"], "static_shapes": True},
     "quantize": {"precision": "w8a16", "weight_type": "QInt8", "min_real_range": 1e-12,
                  "overrides": {"t": {"quant_type": "QUInt16"}}}},
]


class _KeyOnlyBackend:
    name = "ort-qnn"

    def versions(self) -> dict[str, str]:
        return {}


def fixed_pipeline(root: Path) -> Pipeline:
    """A pipeline over a fixed model folder, tool versions held fixed: its keys depend on the options alone."""
    folder = root / "keyed"
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(MODEL)
    (folder / "aipc.yaml").write_text(yaml.safe_dump(DEFINITION, sort_keys=False))
    spec, _ = load_spec(folder)
    p = Pipeline(spec, folder, root / "out", _KeyOnlyBackend())
    p.versions = {"fixed": "1"}
    return p


CASES_BEFORE = json.loads(FIXTURE.read_text())


def _drifted(p: Pipeline) -> set[str]:
    """Stages re-keyed since the fixture by a change of their own (depends_on, version), seen on
    the no-options case: for those only the options' part of the key can be compared."""
    return {s for s in default_workflow() if p.key(REGISTRY[s], {}, {}) != CASES_BEFORE[0]["keys"][s]}


@pytest.mark.parametrize("case", CASES_BEFORE, ids=lambda c: json.dumps(c["options"])[:60])
def test_an_old_manifests_options_key_every_stage_as_before(case, tmp_path):
    from bot.repair.state import RepairState

    assert CASES_BEFORE[0]["options"] == {}
    state = RepairState.from_content({"options": case["options"], "patches": []})
    assert state.content()["options"] == case["options"]  # the manifest section is written back unchanged
    p = fixed_pipeline(tmp_path)
    for s in default_workflow():  # what the key hashes of the options: what the old code hashed
        assert options_content(s, state.stage_options) == case["options"].get(s), s
    drifted = _drifted(p)
    keys = {s: p.key(REGISTRY[s], {}, state.stage_options) for s in default_workflow() if s not in drifted}
    assert keys == {s: k for s, k in case["keys"].items() if s not in drifted}


def test_the_stages_that_take_options_are_compared_by_their_whole_key(tmp_path):
    """If one of them was re-keyed on purpose, regenerate the fixture with the code just before that change."""
    from bot.stage_options import BY_STAGE

    assert not _drifted(fixed_pipeline(tmp_path)) & set(BY_STAGE)


def test_the_fixture_covers_every_option_a_stage_declares():
    """A knob added to a stage's options joins the fixture's cases, so its content is pinned too."""
    seen = {(stage, k) for c in json.loads(FIXTURE.read_text()) for stage, knobs in c["options"].items() for k in knobs}
    declared = {(name, k) for name, cls in REGISTRY.items() for k in cls.Options.model_fields}
    assert declared
    assert declared - seen == set()


def test_each_stage_declares_the_options_the_catalogue_knows_it_by():
    from bot.stage_options import BY_STAGE, NoOptions

    assert {name: cls.Options for name, cls in REGISTRY.items() if cls.Options is not NoOptions} == BY_STAGE


def test_a_wrong_knob_or_value_is_refused_where_it_is_written():
    from bot.errors import BadInput
    from bot.repair.state import RepairState
    from bot.stage_options import QuantizeOptions

    with pytest.raises(BadInput, match="quantize.weight_typo"):
        RepairState().with_options(QuantizeOptions, weight_typo="QInt8")
    with pytest.raises(BadInput, match="export.opset"):
        RepairState().with_option("export", "opset", "18")  # strict: a string is not an opset
    with pytest.raises(BadInput, match="quantize.overrides.t.quant_type"):
        RepairState({"quantize": {"overrides": {"t": {"quant_type": "QUInt12"}}}})
    # unsetting returns to the definition's choice, and the content says so
    s = RepairState().with_options(QuantizeOptions, precision="w8a16", per_channel=False)
    assert s.without(QuantizeOptions, "per_channel").options == {"quantize": {"precision": "w8a16"}}
