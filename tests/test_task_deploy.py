"""End to end on the HTP: a tiny classifier trained for a second, PNG files written from a seed,
preprocess → calibration and validation, postprocess → label and top-k checks against FP32 and labels,
the package's run.py reading a PNG, the report's task table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from bot import backends
from bot.pipeline import Pipeline
from bot.report import render
from bot.spec import load_spec

pytestmark = pytest.mark.htp
ROOT_BOT = Path(__file__).resolve().parents[1] / "bot"

MODEL = '''
import torch
import torch.nn as nn
from pathlib import Path


class Quadrants(nn.Module):
    """Which quadrant of a 16×16 image is bright (4 classes)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8 * 4, 4)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        h = nn.functional.adaptive_avg_pool2d(h, 2).flatten(1)
        return self.head(h)


def build():
    m = Quadrants()
    m.load_state_dict(torch.load(Path(__file__).parent / "weights.pt", weights_only=True))
    return m.eval()
'''

DATA = '''
import json
import os
import sys

import numpy as np
from PIL import Image


def image(rng, quadrant):
    img = rng.uniform(0, 60, (16, 16, 3))
    r, c = divmod(quadrant, 2)
    img[r * 8:(r + 1) * 8, c * 8:(c + 1) * 8] += 180
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def make(folder, seed):
    rng = np.random.default_rng(seed)
    labels = {}
    for split, n in (("calib", 8), ("val", 8)):
        (folder / "data" / split).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            q = k % 4
            name = f"{split}_{k}.png"
            image(rng, q).save(folder / "data" / split / name)
            labels[name] = q
    (folder / "data" / "labels.json").write_text(json.dumps(labels))


def preprocess(path):
    # run.py preprocesses before loading the QNN libraries (a native library loaded after them can crash)
    if os.environ.get("FAIL_IF_QNN_LOADED") and "onnxruntime_qnn" in sys.modules:
        raise RuntimeError("preprocess ran after the QNN libraries were loaded")
    x = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return {"image": x.transpose(2, 0, 1)[None]}
'''

POST = '''
import numpy as np


def answer(outputs):
    scores = outputs["logits"][0]
    e = np.exp(scores - scores.max())
    return {"label": int(np.argmax(scores)), "scores": scores, "probs": e / e.sum()}
'''


IDENTICAL = '''
import numpy as np


def identical(fp32, deployed):
    return float(np.mean([np.array_equal(a["scores"], b["scores"]) for a, b in zip(fp32, deployed)]))
'''


def _train(folder: Path) -> None:
    """A second of training on synthetic quadrant images, so the weights are trained, not random."""
    import numpy as np
    import torch

    sys.path.insert(0, str(folder))
    try:
        import importlib

        model_mod = importlib.import_module("model")
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("model", None)
    torch.manual_seed(0)
    net = model_mod.Quadrants()
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    rng = np.random.default_rng(1)
    for _ in range(150):
        q = rng.integers(0, 4, 32)
        x = rng.uniform(0, 60, (32, 3, 16, 16))
        for i, k in enumerate(q):
            r, c = divmod(int(k), 2)
            x[i, :, r * 8:(r + 1) * 8, c * 8:(c + 1) * 8] += 180
        loss = torch.nn.functional.cross_entropy(net(torch.tensor(np.clip(x, 0, 255) / 255, dtype=torch.float32)),
                                                 torch.tensor(q))
        opt.zero_grad(), loss.backward(), opt.step()
    assert loss.item() < 0.3, f"the tiny classifier did not learn (loss {loss.item():.3f})"
    torch.save(net.state_dict(), folder / "weights.pt")


def _definition(folder: Path, metrics: list[dict]) -> None:
    (folder / "aipc.yaml").write_text(yaml.safe_dump({
        "name": "quadrants", "entry": "model.py:build",
        "inputs": [{"name": "image", "shape": [1, 3, 16, 16], "layout": "NCHW"}], "outputs": ["logits"],
        "target": {"precision": "w8a8"},
        "data": {"preprocess": "data.py:preprocess", "calibration": ["data/calib/*.png"],
                 "validation": ["data/val/*.png"], "make": "data.py:make", "seed": 7, "labels": "data/labels.json"},
        "task": {"postprocess": "post.py:answer", "metrics": metrics}}, sort_keys=False))


@pytest.fixture(scope="module")
def quadrants(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "quadrants"
    folder.mkdir()
    (folder / "model.py").write_text(textwrap.dedent(MODEL))
    (folder / "data.py").write_text(textwrap.dedent(DATA))
    (folder / "post.py").write_text(textwrap.dedent(POST))
    (folder / "metrics.py").write_text(textwrap.dedent(IDENTICAL))
    _train(folder)
    # the files exist before the first deploy, so every run sees the same folder (data.make has its own test)
    subprocess.run([sys.executable, "-c", "import sys, pathlib; sys.path.insert(0, sys.argv[1]); import data; "
                    "data.make(pathlib.Path(sys.argv[1]), 7)", str(folder)], check=True)
    return folder


METRICS = [{"kind": "label", "key": "label", "min": 0.99, "label_drop_max": 0.0},
           {"kind": "topk", "key": "scores", "k": 2, "min": 0.99},
           {"kind": "decisions", "key": "probs", "threshold": 0.5, "min": 0.99}]


def _run(folder: Path, out: Path):
    spec, folder = load_spec(folder)
    return Pipeline(spec, folder, out, backends.for_target(spec.target)).run()


def test_data_files_preprocess_postprocess_and_task_metrics_on_the_htp(quadrants, tmp_path):
    _definition(quadrants, METRICS)
    out = tmp_path / "dep"
    outcome = _run(quadrants, out)
    assert outcome.passed, outcome.failure
    manifest = json.loads((out / "manifest.json").read_text())
    stages = {s["stage"]: s for s in manifest["stages"]}
    load = stages["load"]["metrics"]
    assert load["samples"] == 8 and load["calibration_samples"] == 8 and load["labelled_samples"] == 8
    assert load["validation_files"][0] == "data/val/val_0.png" and not set(load["validation_files"]) & set(
        load["calibration_files"])

    task = stages["validate"]["metrics"]["task"]
    assert task["samples"] == 8 and task["labelled"]
    label, topk, decisions = task["metrics"]
    agree = next(f for f in label["figures"] if f["name"] == "agreement with FP32")
    acc = next(f for f in label["figures"] if f["name"].startswith("accuracy vs labels"))
    assert agree["deployed"] == 1.0 and agree["passed"]
    assert acc["fp32"] == 1.0 and acc["deployed"] == 1.0 and acc["delta"] == 0.0  # the net learned the task
    assert topk["passed"] and topk["figures"][0]["deployed"] == 1.0
    assert decisions["passed"] and decisions["figures"][0]["name"] == "frames decided alike (32)"
    assert "not compared" in decisions["note"]  # class-id labels are not per-frame decisions
    # one rendered sample (the probabilities as a curve), copied beside the report's other plots
    assert stages["validate"]["artifacts"]["task_sample"] == "task_sample.png"
    render.html_report(manifest, out / "report")
    assert (out / "report" / "task_sample.png").read_bytes() == (out / "validate" / "task_sample.png").read_bytes()
    answers = json.loads((out / "validate" / "answers.json").read_text())["samples"]
    assert [a["file"] for a in answers] == load["validation_files"]
    assert [a["fp32"]["label"] for a in answers] == [k % 4 for k in range(8)]

    # the package reads a PNG through the same preprocess and gives the validated answer
    pkg = out / "package"
    assert (pkg / "data.py").is_file() and (pkg / "post.py").is_file()
    # run.py makes its answers JSON with the bot's own helper, shipped beside it (one jsonable, not two)
    assert (pkg / "plain_json.py").read_text() == (ROOT_BOT / "plain_json.py").read_text()
    assert "def jsonable" not in (pkg / "run.py").read_text()
    iface = json.loads((pkg / "interface.json").read_text())
    assert iface["data"] == {"preprocess": "data.py:preprocess", "postprocess": "post.py:answer"}
    smoke = stages["package"]["checks"][0]
    assert smoke["passed"] and "answer" in smoke["name"]
    run = subprocess.run([sys.executable, str(pkg / "run.py"), str(quadrants / "data/val/val_3.png"),
                          str(quadrants / "data/val/val_2.png"), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "FAIL_IF_QNN_LOADED": "1"})
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout.strip().splitlines()[-1])
    assert [r["answer"]["label"] for r in rows] == [3, 2]
    assert json.loads((tmp_path / "o" / "val_3" / "answer.json").read_text()) == answers[3]["deployed"]

    body = render.pr_body(manifest)
    assert "### Task metrics (8 validation samples, with labels)" in body
    assert "| label:label | agreement with FP32 | reference | 1 | — | ≥ 0.99 | ✅ |" in body
    assert "| label:label | accuracy vs labels (8) | 1 | 1 | +0 | drop ≤ 0 | ✅ |" in body
    assert "Data files: 8 validation (data/val/val_0.png" in body


def test_a_task_bar_the_deployed_model_misses_fails_validate_and_reruns_only_validate(quadrants, tmp_path):
    """Exact equality of the score vectors is a bar a w8a8 model cannot meet: validate must fail on it,
    and adding the metric must not re-run anything before validate."""
    _definition(quadrants, METRICS)
    out = tmp_path / "dep"
    assert _run(quadrants, out).passed
    _definition(quadrants, METRICS + [{"kind": "custom", "function": "metrics.py:identical", "min": 1.0,
                                       "name": "bit-exact scores"}])
    outcome = _run(quadrants, out)
    assert not outcome.passed and outcome.failure.stage == "validate"
    assert outcome.failure.details["failing_task_metrics"] == ["bit-exact scores"]
    assert "task metric(s) bit-exact scores below threshold" in outcome.failure.message
    ran = [r.stage for r in outcome.results if not r.cached]
    assert ran == ["validate"], ran
    body = render.pr_body(json.loads((out / "manifest.json").read_text()))
    assert "| bit-exact scores | metrics.py:identical | reference | 0 | — | ≥ 1 | ❌ |" in body
