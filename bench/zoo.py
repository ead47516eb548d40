"""Zoo benchmark: each model through the naive path and through the bot, side by side, one run.

    python bench/zoo.py                 # every zoo model + the repository's examples
    python bench/zoo.py --models resnet18,yolov8n

Needs the zoo environment (bench/requirements-zoo.txt: torchvision, timm, ultralytics). Weights
are seeded random; calibration and validation inputs come from the same distribution (uniform
[0, 1], different seeds). Each model runs in its own process (a crash or a hang costs one row),
its result is appended to a JSONL file as soon as it is known (a killed run resumes where it
stopped), and the table is rewritten from the JSONL at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

EXAMPLES = ["esrgan_tiny", "lprnet", "tiny_classifier"]
# The LLM agent is armed (a key and a loopback address where nothing listens): had the rules left
# any failure, the agent would have been called and the call counted in the manifest's `llm`.
ARMED_AGENT = {"PYTHONWARNINGS": "ignore", "AIPC_FORGE": "off", "AIPC_LLM_API_KEY": "zoo-armed",
               "AIPC_LLM_BASE_URL": "http://127.0.0.1:9/v1", "AIPC_LLM_MAX_RETRIES": "0"}


def definition(name: str, shape: list[int]) -> dict:
    validation = {"samples": 2, "seed": 0}
    if name.startswith("yolo"):  # one tensor packs boxes (pixels) and class scores (0–1): check each
        validation["outputs"] = {"output": {"parts": {"boxes": [0, 4], "scores": [4, 84]}, "sqnr_min_db": 15}}
    return {"name": name.replace("_", "-").lower(), "entry": "model.py:build",
            "inputs": [{"name": "x", "shape": shape, "range": [0.0, 1.0]}],
            "calibration": {"samples": 8, "seed": 1},
            "target": {"soc": "SM8650", "precision": "w8a8"},
            "validation": validation,
            "limits": {"repair_attempts": 8}}


def one(name: str, work: Path) -> dict:
    """Child process: naive path, then the bot, on the same module and the same inputs."""
    import numpy as np

    from bot import samples as S
    from bot.deploy import deploy
    from bot.spec import load_spec
    from bot.model_code import build_module
    from naive import run_naive
    from zoo_models import zoo

    if name in EXAMPLES:
        folder = ROOT / "models" / name
    else:
        shape, code = zoo()[name]
        folder = work / "models" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.py").write_text(code)
        (folder / "aipc.yaml").write_text(yaml.safe_dump(definition(name, shape), sort_keys=False))
    spec, folder = load_spec(folder)
    module = build_module(folder, spec.entry)
    samples = [s[spec.inputs[0].name] for s in S.random_inputs(spec.inputs, spec.validation.samples, spec.validation.seed)]
    calib = [s[spec.inputs[0].name] for s in S.random_inputs(spec.inputs, spec.calibration.samples, spec.calibration.seed)]
    row: dict = {"model": name, "input": spec.inputs[0].shape}
    try:
        row["naive"] = run_naive(module, spec.inputs[0].shape, samples, calib)
    except Exception as e:  # the naive path failing is a result, not a crash
        row["naive"] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    out = work / "deployments" / name
    import shutil

    shutil.rmtree(out, ignore_errors=True)  # a cold run: the figures must not come from the store
    t0 = time.perf_counter()
    outcome = deploy(folder, out_dir=out)
    row["bot_seconds"] = round(time.perf_counter() - t0, 2)
    m = outcome.manifest
    v = outcome.result("validate")
    c = outcome.result("compat")
    row["bot"] = {
        "passed": outcome.passed, "status": m.get("status"),
        "full_htp": bool(outcome.result("compile") and outcome.result("compile").passed),
        "outputs": v.metrics.get("outputs") if v else None,
        "compat_nodes": (c.metrics.get("total_nodes"), c.metrics.get("fallback_nodes")) if c else None,
        "stages": {s["stage"]: s["seconds"] for s in m.get("stages", [])},
        "repairs": [(" + ".join([a["repair"], *a.get("composed", [])]), a["kept"]) for a in m.get("repairs", [])],
        "kept": [r for a in m.get("repairs", []) if a["kept"] for r in [a["repair"], *a.get("composed", [])]],
        "llm_calls": (m.get("llm") or {}).get("calls", 0),
        "failure": outcome.failure.message[:200] if outcome.failure else None,
        "precision": (outcome.result("quantize").metrics.get("precision") if outcome.result("quantize") else None),
    }
    return row


NAIVE_COSINE = 0.95  # the report's bar for quantized models, the one the bot's w8a8 zoo definitions use


def table(rows: list[dict]) -> str:
    def f(x, nd=4):
        return "—" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))

    lines = ["| model | naive: full HTP | naive: cosine | naive: SQNR dB | naive: pass | bot: full HTP | "
             "bot: cosine (worst part) | bot: SQNR dB | bot: pass | precision | repairs kept | LLM calls | bot s | "
             "naive s |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        n, b = r.get("naive", {}), r.get("bot", {})
        outs = b.get("outputs") or {}
        cos = min((o["cosine"] for o in outs.values() if isinstance(o.get("cosine"), float)), default=None)
        sq = min((o["sqnr_db"] for o in outs.values() if isinstance(o.get("sqnr_db"), float)), default=None)
        naive_s = sum(n.get("seconds", {}).values()) if "seconds" in n else None
        ncos = n.get("cosine")
        naive_pass = bool(n.get("full_htp")) and isinstance(ncos, float) and ncos >= NAIVE_COSINE
        lines.append(" | ".join([
            f"| {r['model']}", "error" if "error" in n else ("yes" if n.get("full_htp") else
                                                             f"no ({', '.join(n.get('rejected_ops', [])) or n.get('fallback_nodes')})"),
            "run failed" if n.get("run_error") else f(ncos), f(n.get("sqnr_db"), 1), "pass" if naive_pass else "FAIL",
            "yes" if b.get("full_htp") else "no", f(cos), f(sq, 1),
            "**pass**" if b.get("passed") else "FAIL", b.get("precision") or "—", ", ".join(b.get("kept", [])) or "—",
            str(b.get("llm_calls", 0)), f(r.get("bot_seconds"), 1), f(naive_s, 1)]) + " |")
    stages = ["load", "export", "optimize", "compat", "quantize", "compile", "validate", "package"]
    lines += ["", "Seconds per stage of the bot's final (published) run; repair attempts are in `bot s` above.", "",
              "| model | " + " | ".join(stages) + " |", "|---|" + "---|" * len(stages)]
    for r in rows:
        st = (r.get("bot") or {}).get("stages", {})
        lines.append(f"| {r['model']} | " + " | ".join(f(st.get(k), 2) for k in stages) + " |")
    return "\n".join(lines)


def main() -> int:
    from zoo_models import zoo

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(list(zoo()) + EXAMPLES))
    ap.add_argument("--work", default=str(HERE / "out" / "zoo"))
    ap.add_argument("--results", default=str(ROOT / "docs" / "zoo-results.jsonl"))
    ap.add_argument("--table", default=str(ROOT / "docs" / "zoo.md"))
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--fresh", action="store_true", help="forget earlier results")
    a = ap.parse_args()
    work = Path(a.work)
    if a.one:
        print("ZOO-ROW " + json.dumps(one(a.one, work), default=str), flush=True)
        return 0
    results = Path(a.results)
    if a.fresh:
        results.unlink(missing_ok=True)
    done = {} if not results.exists() else {
        json.loads(l)["model"]: json.loads(l) for l in results.read_text().splitlines() if l.strip()}
    for name in a.models.split(","):
        if name in done:
            continue
        print(f"== {name}", flush=True)
        try:
            proc = subprocess.run([sys.executable, __file__, "--one", name, "--work", str(work)], capture_output=True,
                                  text=True, timeout=a.timeout, env={**os.environ, **ARMED_AGENT})
            line = next((l for l in proc.stdout.splitlines() if l.startswith("ZOO-ROW ")), None)
            row = json.loads(line[8:]) if line else {"model": name, "error": proc.stderr[-500:]}
        except subprocess.TimeoutExpired:
            row = {"model": name, "error": f"timeout after {a.timeout:.0f} s"}
        done[name] = row
        with results.open("a") as fh:
            fh.write(json.dumps(row, default=str) + "\n")
        print(table([row]).splitlines()[2], flush=True)
    canonical = list(zoo()) + EXAMPLES
    order = [n for n in canonical if n in done] + [n for n in done if n not in canonical]
    text = table([done[n] for n in order])
    Path(a.table).write_text("# Zoo benchmark: naive path vs the bot\n\nCommand: `python bench/zoo.py` "
                             "(zoo environment: `bench/requirements-zoo.txt`).\n\n" + text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
