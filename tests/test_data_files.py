"""Real data in the definition: files in the model folder through `preprocess` feed calibration and
validation (kept apart), `data.make` writes them from a seed, paths never leave the folder."""

from __future__ import annotations

import json
import textwrap
import wave
from pathlib import Path

import numpy as np
import pytest
import yaml

from bot import backends
from bot import samples as S
from bot.errors import BadInput
from bot.paths import glob_inside, inside
from bot.pipeline import Pipeline
from bot.spec import load_spec
from conftest import write_model

PREPROCESS_PNG = '''
import numpy as np
from PIL import Image


def preprocess(path):
    img = np.asarray(Image.open(path).convert("RGB").resize((16, 16)), dtype=np.float32) / 255.0
    return {"x": img.transpose(2, 0, 1)[None]}
'''

MAKE_PNG = '''
import numpy as np
from PIL import Image


def make(folder, seed):
    rng = np.random.default_rng(seed)
    for split, n in (("calib", 3), ("val", 2)):
        (folder / "data" / split).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / "data" / split / f"{k}.png")
'''


def _png_model(tmp_path: Path, data: dict, counts: dict | None = None) -> Path:
    """A tiny model reading PNGs; `counts` sets validation/calibration explicitly (default: all files)."""
    folder = write_model(tmp_path / "m", {"data": data})
    raw = yaml.safe_load((folder / "aipc.yaml").read_text())
    del raw["validation"], raw["calibration"]
    raw.update(counts or {})
    (folder / "aipc.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    (folder / "prep.py").write_text(textwrap.dedent(PREPROCESS_PNG))
    (folder / "make_data.py").write_text(textwrap.dedent(MAKE_PNG))
    return folder


def _load(folder: Path, out: Path):
    spec, folder = load_spec(folder)
    outcome = Pipeline(spec, folder, out, backends.for_target(spec.target)).run(stop_after="load")
    return outcome, outcome.result("load")


def test_make_writes_the_files_and_preprocess_feeds_both_sets(tmp_path):
    folder = _png_model(tmp_path, {"preprocess": "prep.py:preprocess", "calibration": ["data/calib/*.png"],
                                   "validation": ["data/val/*.png"], "make": "make_data.py:make", "seed": 3})
    outcome, load = _load(folder, tmp_path / "dep")
    assert outcome.failure is None and load.passed
    assert load.metrics["validation_files"] == ["data/val/0.png", "data/val/1.png"]
    assert load.metrics["calibration_files"] == ["data/calib/0.png", "data/calib/1.png", "data/calib/2.png"]
    assert load.metrics["samples"] == 2 and load.metrics["calibration_samples"] == 3 and load.metrics["data_made"]
    val = S.load(tmp_path / "dep" / "load" / "samples.npz")
    from PIL import Image
    expect = np.asarray(Image.open(folder / "data/val/1.png").convert("RGB").resize((16, 16)), dtype=np.float32) / 255
    np.testing.assert_allclose(val[1]["x"][0].transpose(1, 2, 0), expect)
    manifest = json.loads((tmp_path / "dep" / "manifest.json").read_text())
    load_m = next(s for s in manifest["stages"] if s["stage"] == "load")
    assert load_m["metrics"]["calibration_files"] == load.metrics["calibration_files"]
    assert "load/data.json" in manifest["artifacts"]
    # a second run finds the files: make does not run again, the samples are the same
    again, load2 = _load(folder, tmp_path / "dep2")
    assert not load2.metrics["data_made"]
    assert (tmp_path / "dep2/load/samples.npz").read_bytes() == (tmp_path / "dep/load/samples.npz").read_bytes()


def test_validation_samples_set_explicitly_takes_the_first_files(tmp_path):
    data = {"preprocess": "prep.py:preprocess", "calibration": ["data/calib/*"], "validation": ["data/val/*"],
            "make": "make_data.py:make"}
    folder = _png_model(tmp_path, data, {"validation": {"samples": 1}, "calibration": {"samples": 2}})
    outcome, load = _load(folder, tmp_path / "dep")
    assert load.metrics["validation_files"] == ["data/val/0.png"] and load.metrics["samples"] == 1
    assert load.metrics["calibration_files"] == ["data/calib/0.png", "data/calib/1.png"]
    assert load.metrics["calibration_samples"] == 2


def test_a_file_in_both_sets_is_bad_input(tmp_path):
    folder = _png_model(tmp_path, {"preprocess": "prep.py:preprocess", "calibration": ["data/*/*.png"],
                                   "validation": ["data/val/*.png"], "make": "make_data.py:make"})
    with pytest.raises(BadInput, match=r"2 file\(s\) are in both .*data/val/0.png"):
        _load(folder, tmp_path / "dep")


def test_a_glob_without_files_and_without_make_names_the_field(tmp_path):
    folder = _png_model(tmp_path, {"preprocess": "prep.py:preprocess", "validation": ["data/none/*.png"]})
    with pytest.raises(BadInput) as e:
        _load(folder, tmp_path / "dep")
    assert "data.validation" in str(e.value) and "data/none/*.png" in str(e.value) and "data.make" in str(e.value)


def test_preprocess_returning_the_wrong_shape_names_the_file(tmp_path):
    folder = _png_model(tmp_path, {"preprocess": "prep.py:preprocess", "validation": ["data/val/*.png"],
                                   "make": "make_data.py:make"})
    (folder / "prep.py").write_text("import numpy as np\ndef preprocess(path):\n    return {'x': np.zeros((1, 3, 8, 8))}\n")
    with pytest.raises(BadInput, match=r"shape \[1, 3, 8, 8\] from data/val/0.png.*declares \[1, 3, 16, 16\]"):
        _load(folder, tmp_path / "dep")


def test_paths_never_leave_the_model_folder(tmp_path):
    (tmp_path / "secret.txt").write_text("x")
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "link.txt").symlink_to(tmp_path / "secret.txt")
    for bad in ("../secret.txt", str(tmp_path / "secret.txt"), "link.txt"):
        with pytest.raises(BadInput, match="outside the model folder|absolute path"):
            inside(folder, bad, "data.validation")
    with pytest.raises(BadInput, match="outside"):
        glob_inside(folder, "../*.txt", "data.validation")
    data = _png_model(tmp_path / "g", {"preprocess": "prep.py:preprocess", "validation": ["../../*.txt"]})
    with pytest.raises(BadInput, match="outside the model folder"):
        _load(data, tmp_path / "dep")


def test_wav_files_and_labels_reach_the_load_record(tmp_path):
    """Audio through the standard-library wave module; labels keyed by file name."""
    folder = write_model(tmp_path / "m", {
        "inputs": [{"name": "x", "shape": [1, 3, 16, 16]}], "validation": {"samples": 8},
        "data": {"preprocess": "prep.py:preprocess", "validation": ["clips/*.wav"], "labels": "labels.json"}})
    (folder / "prep.py").write_text(textwrap.dedent('''
        import wave
        import numpy as np

        def preprocess(path):
            with wave.open(str(path)) as w:
                pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768
            return {"x": np.resize(pcm, (1, 3, 16, 16))}
    '''))
    (folder / "clips").mkdir()
    for k, f0 in enumerate((220, 440)):
        t = np.arange(8000) / 8000
        with wave.open(str(folder / "clips" / f"tone{k}.wav"), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
            w.writeframes((0.5 * np.sin(2 * np.pi * f0 * t) * 32767).astype(np.int16).tobytes())
    (folder / "labels.json").write_text(json.dumps({"tone0.wav": "low", "tone1.wav": "high"}))
    _, load = _load(folder, tmp_path / "dep")
    record = json.loads((tmp_path / "dep" / "load" / "data.json").read_text())
    assert record["labels"] == ["low", "high"] and load.metrics["labelled_samples"] == 2
    assert load.metrics["calibration_samples"] == 4  # no calibration files: the random source, as before
    x = S.load(tmp_path / "dep" / "load" / "samples.npz")[1]["x"]
    assert x.dtype == np.float32 and 0.3 < float(np.max(x)) <= 0.5


def test_schema_fields_and_their_errors(tmp_path):
    folder = write_model(tmp_path / "m", {"data": {"preprocess": "prep.py"}})
    with pytest.raises(BadInput, match=r"data.preprocess: String should match"):
        load_spec(folder)
    write_model(folder, {"data": {"preprocess": "prep.py:preprocess"}})
    with pytest.raises(BadInput, match="data: give 'calibration' and/or 'validation'"):
        load_spec(folder)
    write_model(folder, {"task": {"metrics": [{"kind": "topk", "k": 0}]}})
    with pytest.raises(BadInput, match=r"task.metrics\[0\].topk.k"):
        load_spec(folder)
    write_model(folder, {"task": {"metrics": [{"kind": "pitch"}]}})
    with pytest.raises(BadInput, match=r"task.metrics\[0\].*'label', 'topk'"):
        load_spec(folder)
    write_model(folder, {"task": {"metrics": [{"kind": "label"}, {"kind": "label"}]}})
    with pytest.raises(BadInput, match="names must be unique"):
        load_spec(folder)
    write_model(folder, {"task": {"metrics": [{"kind": "custom", "function": "m.py:f"}]}})
    with pytest.raises(BadInput, match="give 'min' and/or 'max'"):
        load_spec(folder)
    write_model(folder, {"task": {"postprocess": "post.py:answer", "metrics": [
        {"kind": "label", "key": "cls", "min": 0.99}, {"kind": "topk", "k": 5},
        {"kind": "sequence"}, {"kind": "detections", "iou": 0.5, "recall_min": 0.95, "precision_min": 0.95},
        {"kind": "decisions", "threshold": 0.5}, {"kind": "error", "unit": "cents", "max": 20, "share_min": 0.99},
        {"kind": "ranking", "min": 1.0}, {"kind": "custom", "function": "metrics.py:score", "min": 0.9}]}})
    spec, _ = load_spec(folder)
    assert [m.kind for m in spec.task.metrics] == ["label", "topk", "sequence", "detections", "decisions", "error",
                                                   "ranking", "custom"]
    assert spec.task.metrics[0].label == "label:cls"
