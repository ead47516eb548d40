"""The quantize stage with a relative output directory: onnxruntime's calibrator runs with the working
directory changed to the stage's, so the paths it is given must not be relative to the old one (a
relative `--work` of bench/trained_quant_compare.py failed every onnxruntime row with "Unable to open
proto file")."""

from __future__ import annotations

from pathlib import Path


def test_quantize_stage_runs_with_a_relative_work_directory(tmp_path, monkeypatch):
    from bot import backends
    from bot.pipeline import Pipeline
    from bot.spec import load_spec
    from tests.conftest import write_model

    folder = write_model(tmp_path / "m" / "tiny")
    spec, folder = load_spec(folder)
    monkeypatch.chdir(tmp_path)
    run = Pipeline(spec, folder, Path("rel-out"), backends.for_target(spec.target),
                   workflow=["load", "export", "optimize", "quantize"]).run({"quantize": {"per_channel": True}})
    q = run.result("quantize")
    assert q is not None and q.passed, run.failure
    assert (tmp_path / run.dirs["quantize"] / "model.onnx").is_file()
