"""The definition loader: every error names the field path and what was expected."""

from __future__ import annotations

import pytest

from bot.errors import BadInput
from bot.spec import load_spec
from tests.conftest import write_model


def _error(tmp_path, spec=None, raw: str | None = None) -> str:
    folder = write_model(tmp_path / "m", spec)
    if raw is not None:
        (folder / "aipc.yaml").write_text(raw)
    with pytest.raises(BadInput) as e:
        load_spec(folder)
    return str(e.value)


def test_defaults_make_a_minimal_definition_deployable(tiny_model):
    spec, folder = load_spec(tiny_model)
    assert spec.target.precision == "w8a16" and spec.target.soc == "SM8650"
    assert spec.check_for("y").cosine_min == 0.95  # quantized default from the report
    fp16 = spec.model_copy(update={"target": spec.target.model_copy(update={"precision": "fp16"})})
    assert fp16.check_for("y").cosine_min == 0.99
    assert folder == tiny_model.resolve()


def test_shape_error_names_the_field_path(tmp_path):
    msg = _error(tmp_path, {"inputs": [{"name": "x", "shape": [1, -3, 16]}]})
    assert "inputs[0].shape: expected a list of positive integers" in msg


def test_unknown_soc_lists_known_ones(tmp_path):
    msg = _error(tmp_path, {"target": {"soc": "SM0000"}})
    assert "target.soc" in msg and "SM8650" in msg


def test_malformed_yaml_gives_line_and_column(tmp_path):
    msg = _error(tmp_path, raw="name: x\ninputs: [\n  - {name: x\n")
    assert "malformed YAML" in msg and "aipc.yaml:" in msg


def test_missing_entry_file(tmp_path):
    msg = _error(tmp_path, {"entry": "nope.py:build"})
    assert "nope.py" in msg and "not found" in msg


def test_entry_and_onnx_are_exclusive(tmp_path):
    msg = _error(tmp_path, {"onnx": "model.onnx"})
    assert "exactly one of 'entry'" in msg


def test_typo_in_a_field_is_refused(tmp_path):
    msg = _error(tmp_path, {"validaton": {"samples": 2}})
    assert "validaton" in msg
