"""What FP32 answers on a definition's own inputs, without the bot: make the data if missing, run the
model on the CPU (PyTorch or ONNX Runtime), apply the postprocess to every validation file.

    python bench/trained/fp32.py deepsort_mobilenetv2 [--graph NAME]

A check that each builder, preprocess and postprocess works and that the task answer is what a
user of the model would expect (the knowledge file's FP32 figures), before any quantization.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent


def load(folder: Path, ref: str):
    file, _, fn = ref.partition(":")
    sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(f"tz_{folder.name}_{Path(file).stem}", folder / file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, fn)


def files(folder: Path, globs: list[str]) -> list[Path]:
    return [Path(p) for g in globs for p in sorted(glob.glob(str(folder / g)))]


def runner(folder: Path, part: dict):
    names = [i["name"] for i in part["inputs"]]
    if part.get("onnx"):
        import onnxruntime as ort

        sess = ort.InferenceSession(str(folder / part["onnx"]), providers=["CPUExecutionProvider"])
        outs = part.get("outputs") or [o.name for o in sess.get_outputs()]
        return lambda s: dict(zip(outs, sess.run(None, {n: s[n] for n in names})))
    import torch

    module = load(folder, part["entry"])().eval()

    def run(s):
        with torch.no_grad():
            got = module(*[torch.from_numpy(s[n]) for n in names])
        got = [got] if isinstance(got, torch.Tensor) else list(got)
        return dict(zip(part.get("outputs") or [f"output_{i}" for i in range(len(got))], [g.numpy() for g in got]))
    return run


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--graph", default=None)
    ap.add_argument("--show", type=int, default=40, help="answers printed")
    a = ap.parse_args()
    folder = HERE / a.model
    spec = yaml.safe_load((folder / "aipc.yaml").read_text())
    part = next(g for g in spec["graphs"] if g["name"] == a.graph) if a.graph else spec
    data = part.get("data") or spec["data"]
    task = part.get("task") or spec.get("task") or {}
    if (not files(folder, data["validation"]) or not files(folder, data["calibration"])) and data.get("make"):
        load(folder, data["make"])(folder, data.get("seed", 0))
    prep = load(folder, data["preprocess"])
    post = load(folder, task["postprocess"]) if task.get("postprocess") else (lambda o: o)
    run = runner(folder, part)
    val, cal = files(folder, data["validation"]), files(folder, data["calibration"])
    print(f"{a.model}: {len(cal)} calibration, {len(val)} validation files")
    answers = []
    for k, f in enumerate(val):
        ans = post(run(prep(f)))
        answers.append(ans)
        if k < a.show:
            text = ans if not isinstance(ans, np.ndarray) else f"array{list(ans.shape)} {np.round(ans.ravel()[:6], 3)}"
            print(f"  {f.name}: {text if len(str(text)) < 300 else str(text)[:300] + ' …'}")
    if any(m.get("kind") == "ranking" for m in task.get("metrics", [])):  # embeddings: nearest neighbours
        e = np.stack([x / np.linalg.norm(x) for x in answers])
        sim = e @ e.T
        np.fill_diagonal(sim, -np.inf)
        for k, f in enumerate(val):
            j = int(np.argmax(sim[k]))
            print(f"  nearest of {f.name}: {val[j].name} ({sim[k, j]:.3f}); others ≤ "
                  f"{np.sort(sim[k])[-2]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
