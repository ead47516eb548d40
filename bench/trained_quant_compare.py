"""Quantization settings side by side on trained models, on onnxruntime's CPU QDQ simulation (issue 14).

    /work/venvs/trained/bin/python bench/trained_quant_compare.py --only deepsort_mobilenetv2

For each definition: the bot's stages up to `quantize` (load, export, optimize, quantize: no HTP compile,
so one variant costs seconds, not minutes), once per variant — per-tensor vs per-channel weights, at w8a8
and w8a16, MinMax vs MSE ranges — then the QDQ graph on onnxruntime's CPU, which computes the quantized
arithmetic (scales, zero points, rounding) as written, on every validation sample: pooled cosine, the
worst sample's cosine and the definition's task metrics against FP32. The HTP itself is measured by
bench/trained_zoo.py; this isolates what each quantization choice does to the numbers.
Writes `docs/trained-quant-compare.md` (and `.jsonl`).

Issue 14's one run over the whole trained zoo, zero LLM calls (no repair loop: each variant is one pass):

    PYTHONPATH=. /work/venvs/trained-aimet/bin/python bench/trained_quant_compare.py --only all --set issue14 \
        --out docs/trained-quant-compare-all

`--set issue14` runs the six variants of `ISSUE14` on every model first, then SeqMSE and AdaRound
(`CHEAP`) only on the models with at most `--seqmse-layers` / `--adaround-layers` weighted layers (the others
get a row saying why not and what it would take at the per-layer seconds this run measured); each row carries the model's deployed HTP result from
docs/trained-zoo-results.jsonl beside it. A variant that raises is a one-line error row, not a lost run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

VARIANTS = {  # name → quantize options the repair loop would set
    "w8a8 per-tensor": {"precision": "w8a8", "per_channel": False},
    "w8a8 per-channel": {"precision": "w8a8", "per_channel": True},
    "w8a8 per-channel, MSE ranges": {"precision": "w8a8", "per_channel": True, "calibrate_method": "mse"},
    "w8a16 per-tensor": {"precision": "w8a16", "per_channel": False},
    "w8a16 per-channel": {"precision": "w8a16", "per_channel": True},
    "w8a16 per-channel, signed weights": {"precision": "w8a16", "per_channel": True, "weight_type": "QInt8"},
}
# `--aimet` (run in a venv with the [aimet] extra): AIMET's QuantSim with the target's HTP config, and its
# techniques, in the same table; SeqMSE with fewer candidates than AIMET's 20 to fit a loaded machine
AIMET_VARIANTS = {
    "w8a8 AIMET QuantSim (HTP config)": {"precision": "w8a8", "engine": "aimet"},
    "w8a8 AIMET CLE": {"precision": "w8a8", "engine": "aimet", "techniques": ["cle"]},
    "w8a16 AIMET QuantSim (HTP config)": {"precision": "w8a16", "engine": "aimet"},
    "w8a8 AIMET SeqMSE (5 candidates)": {"precision": "w8a8", "engine": "aimet", "techniques": ["seqmse"],
                                         "seqmse_candidates": 5},
    # AdaRound with 50 steps per layer (the bot's default is 1000, AIMET's 10000): at 200 steps one
    # MobileNetV2 layer took ~74 s on this shared CPU (load 12), ~2 h for its 99 layers
    "w8a8 AIMET AdaRound (50 iterations)": {"precision": "w8a8", "engine": "aimet", "techniques": ["adaround"],
                                            "adaround_iterations": 50},
}
# bias correction (bot/quant/bias_correction.py) on the defaults and on AIMET's QuantSim: `--set bias`
BIAS_VARIANTS = {
    "w8a8 per-channel, bias correction": {"precision": "w8a8", "per_channel": True, "bias_correction": "analytic"},
    "w8a16 per-channel, bias correction": {"precision": "w8a16", "per_channel": True, "bias_correction": "analytic"},
    "w8a8 AIMET QuantSim, bias correction": {"precision": "w8a8", "engine": "aimet", "bias_correction": "analytic"},
}
CPU_STAGES = ["load", "export", "optimize", "quantize"]
# issue 14's must-show table: onnxruntime per-tensor / per-channel (the default) / w8a16 and AIMET's
# QuantSim, CLE and w8a16 QuantSim, on every trained model
ISSUE14 = ["w8a8 per-tensor", "w8a8 per-channel", "w8a16 per-channel", "w8a8 AIMET QuantSim (HTP config)",
           "w8a8 AIMET CLE", "w8a16 AIMET QuantSim (HTP config)"]
# the weight-choosing techniques at the bot's own defaults (SeqMSE 20 candidates, AdaRound 1000 steps): they
# cost seconds per weighted layer and per calibration sample, so only small graphs get them in one run;
# the layer bound of each is its default (`--seqmse-layers`, `--adaround-layers`)
CHEAP = {
    "w8a8 AIMET SeqMSE (20 candidates)": {"precision": "w8a8", "engine": "aimet", "techniques": ["seqmse"]},
    "w8a8 AIMET AdaRound (1000 iterations)": {"precision": "w8a8", "engine": "aimet", "techniques": ["adaround"]},
}
CHEAP_LAYERS = {"w8a8 AIMET SeqMSE (20 candidates)": 7, "w8a8 AIMET AdaRound (1000 iterations)": 4}
WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMul", "LSTM", "GRU"}


def one_line(e: BaseException) -> str:
    """An error as one table cell: type, message and where it was raised."""
    tb = traceback.extract_tb(e.__traceback__)
    where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(e).__name__}: {' '.join(str(e).split())[:180]}{where}"


def weighted_layers(path: Path) -> int:
    """Nodes whose weights the weight-choosing techniques (SeqMSE, AdaRound) optimise one by one."""
    import onnx

    return sum(n.op_type in WEIGHTED for n in onnx.load(str(path), load_external_data=False).graph.node)


class Model:
    """One definition's repair loop restricted to the CPU stages, so every variant shares its cached stages."""

    def __init__(self, name: str, work: Path, stage_seconds: float | None = None):
        from bot import backends
        from bot.repair.loop import RepairLoop
        from bot.spec import load_spec
        from trained_zoo import TRAINED, prepare, samples_of

        self.name = name
        folder = TRAINED / name
        prepare(folder)
        spec, self.folder = load_spec(folder)
        if stage_seconds:  # AIMET's AdaRound / SeqMSE on a loaded CPU outlast the default stage limit
            spec = spec.model_copy(update={"limits": spec.limits.model_copy(update={"stage_seconds": stage_seconds})})
        self.spec = spec
        self.labels = samples_of(spec, self.folder)[3] if spec.data else None
        self.loop = RepairLoop(spec, self.folder, work / name, backends.for_target(spec.target), workflow=CPU_STAGES)
        self.layers: int | None = None

    def measure(self, variant: str, opts: dict) -> dict:
        from bot import metrics as M
        from bot import samples as S
        from bot.repair.state import RepairState
        from bot.stages._onnx import cpu_outputs
        from bot.task import check

        state = RepairState()
        for k, v in opts.items():
            state = state.with_option("quantize", k, v)
        t0, c0 = time.perf_counter(), time.process_time()
        run = self.loop.run_state(state)
        row = {"model": self.name, "variant": variant, "seconds": round(time.perf_counter() - t0, 1),
               "cpu_seconds": round(time.process_time() - c0, 1), "load": round(os.getloadavg()[0], 1)}
        if self.layers is None and "optimize" in run.dirs and (run.dirs["optimize"] / "model.onnx").is_file():
            self.layers = weighted_layers(run.dirs["optimize"] / "model.onnx")
        if not run.passed and (run.failure is None or run.failure.stage != "quantize"
                               or "quantize" not in run.dirs or not (run.dirs["quantize"] / "model.onnx").is_file()):
            return {**row, "error": " ".join((run.failure.message if run.failure else "did not run").split())[:200]}
        q = run.result("quantize")
        if q is not None:
            row["quantize"] = {k: q.metrics[k] for k in ("technique", "aimet", "precision") if k in q.metrics}
        samples = S.load(run.dirs["load"] / "samples.npz")
        golden = S.load(run.dirs["load"] / "golden.npz")
        outs = cpu_outputs(run.dirs["quantize"] / "model.onnx", samples)
        names = list(golden[0])
        deployed = [dict(zip(names, o)) for o in outs]
        pooled = {n: M.cosine(M.concat([g[n] for g in golden]), M.concat([d[n] for d in deployed])) for n in names}
        per_sample = [min(M.cosine(g[n], d[n]) for n in names) for g, d in zip(golden, deployed)]
        task = check(self.spec.task, self.folder, golden, deployed, self.labels).results if self.spec.task else []
        row["seconds_with_check"] = round(time.perf_counter() - t0, 1)
        return {**row, "cosine": min(pooled.values()), "worst_sample_cosine": min(per_sample),
                "worst_sample": int(min(range(len(per_sample)), key=per_sample.__getitem__)),
                "task": [{"metric": r.metric, "passed": r.passed,
                          "figures": [(f.name, f.deployed) for f in r.figures if f.threshold is not None]}
                         for r in task],
                "failure": run.failure.message[:200] if run.failure else None}


def compare(name: str, work: Path, variants: dict[str, dict], stage_seconds: float | None = None,
            done=lambda rows: None, model: Model | None = None) -> list[dict]:
    """Every variant of one model; a variant (or the model's setup) that raises becomes an error row."""
    rows = []
    try:
        model = model or Model(name, work, stage_seconds)
    except Exception as e:  # noqa: BLE001 — one model that cannot load must not lose the others' rows
        for variant in variants:
            rows.append({"model": name, "variant": variant, "seconds": 0.0, "error": "setup: " + one_line(e)})
        done(rows)
        return rows
    for variant, opts in variants.items():
        t0 = time.perf_counter()
        try:
            rows.append(model.measure(variant, opts))
        except Exception as e:  # noqa: BLE001 — the row says what went wrong; the run goes on
            rows.append({"model": name, "variant": variant, "seconds": round(time.perf_counter() - t0, 1),
                         "load": round(os.getloadavg()[0], 1), "error": one_line(e)})
        print(json.dumps(rows[-1], default=str), flush=True)
        done(rows)
    return rows


def deployed_results(path: Path) -> dict[str, dict]:
    """model → what bench/trained_zoo.py measured deployed on the HTP: precision, task figures, pass."""
    out = {}
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        r = json.loads(line)
        bot = r.get("bot") or {}
        figures = [f"{f['name']} {f['deployed']:.3g}" + ("" if f.get("passed", True) else " ✗")
                   for t in bot.get("task", []) for f in t.get("figures", [])
                   if f.get("threshold") is not None and isinstance(f.get("deployed"), (int, float))]
        cos = [o.get("cosine") for o in (bot.get("outputs") or {}).values() if o.get("cosine") is not None]
        out[r["model"]] = {"precision": bot.get("precision"), "passed": bot.get("passed"),
                           "int16_tensors": bot.get("int16_tensors"), "task": "; ".join(figures),
                           "cosine": min(cos) if cos else None}
    return out


def _task_cell(r: dict) -> str:
    return "; ".join(f"{t['metric']}: " + ", ".join(f"{v:.3f}" if isinstance(v, float) else str(v)
                                                   for _, v in t["figures"]) + ("" if t["passed"] else " ✗")
                     for t in r["task"]) or "—"


def table(rows: list[dict], deployed: dict[str, dict] | None = None) -> str:
    if deployed is None:
        out = ["| model | variant | cosine (pooled) | worst sample cosine | task (CPU QDQ) | s |",
               "|---|---|---|---|---|---|"]
    else:
        out = ["| model | deployed on HTP (trained zoo) | variant | cosine (pooled) | worst sample cosine | "
               "task (CPU QDQ) | s (CPU s, load) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lead = f"| {r['model']} |"
        if deployed is not None:
            d = deployed.get(r["model"])
            cell = (f"{d['precision']}" + (f" ({d['int16_tensors']} int16)" if d.get("int16_tensors") else "")
                    + f", cos {d['cosine']:.4f}; {d['task']}" + ("" if d["passed"] else " ✗")) if d and d.get("precision") \
                else "—"
            lead += f" {cell} |"
        secs = f"{r['seconds']}" + (f" ({r['cpu_seconds']}, {r['load']})" if "cpu_seconds" in r else "")
        if "error" in r or "skipped" in r:
            what = f"error: {r['error']}" if "error" in r else f"not run: {r['skipped']}"
            out.append(f"{lead} {r['variant']} | {what} | | | {secs} |")
            continue
        out.append(f"{lead} {r['variant']} | {r['cosine']:.4f} | {r['worst_sample_cosine']:.4f} "
                   f"(#{r['worst_sample']}) | {_task_cell(r)} | {secs} |")
    return "\n".join(out)


def cheap_rows(models: dict[str, "Model | None"], bounds: dict[str, int], work: Path, stage_seconds,
               write) -> list[dict]:
    """SeqMSE and AdaRound on the models with few weighted layers; on the others a row saying why not and
    what it would take at the seconds per layer this run measured (on small layers: a lower bound)."""
    rows: list[dict] = []
    for name, model in models.items():
        fits = {v: o for v, o in CHEAP.items() if model and model.layers is not None and model.layers <= bounds[v]}
        if fits:
            rows += compare(name, work, fits, stage_seconds, lambda new: write(rows + new), model=model)
    for variant in CHEAP:
        done = [r for r in rows if r["variant"] == variant and "error" not in r and models[r["model"]].layers]
        rate = (sum(r["seconds"] for r in done) / sum(models[r["model"]].layers for r in done)) if done else None
        for name, model in models.items():
            layers = model.layers if model else None
            if layers is not None and layers <= bounds[variant]:
                continue
            why = ("the model did not load" if layers is None else
                   f"{layers} weighted layers > {bounds[variant]}" + (
                       f"; ≳ {layers * rate / 60:.0f} min at this run's {rate:.0f} s a layer on "
                       + ", ".join(r["model"] for r in done) if rate else ""))
            rows.append({"model": name, "variant": variant, "seconds": 0.0, "skipped": why, "layers": layers})
            write(rows)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="deepsort_mobilenetv2", help="definitions in bench/trained, comma-separated, "
                                                                 "or 'all'")
    ap.add_argument("--work", default=str(HERE / "out" / "quant-compare"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "trained-quant-compare"))
    ap.add_argument("--aimet", action="store_true", help="also AIMET's QuantSim, CLE and SeqMSE (needs aimet-onnx)")
    ap.add_argument("--set", choices=["issue14", "bias"], default=None,
                    help="issue14: the six variants of ISSUE14 on every model, then SeqMSE/AdaRound where cheap; "
                         "bias: BIAS_VARIANTS")
    for variant, flag in zip(CHEAP, ("--seqmse-layers", "--adaround-layers")):
        ap.add_argument(flag, type=int, default=CHEAP_LAYERS[variant],
                        help=f"with --set issue14: {variant} only on models with at most this many weighted layers")
    ap.add_argument("--variants", default=None, help="variant names separated by ';' (or ',' when no name "
                                                     "has one) (default: all)")
    ap.add_argument("--stage-seconds", type=float, default=None, help="one stage's time limit (the definition's)")
    a = ap.parse_args()
    from trained_zoo import ORDER, TRAINED

    names = ([n for n in ORDER if (TRAINED / n / "aipc.yaml").is_file()]
             + sorted(p.parent.name for p in TRAINED.glob("*/aipc.yaml") if p.parent.name not in ORDER)) \
        if a.only == "all" else a.only.split(",")
    every = {**VARIANTS, **AIMET_VARIANTS, **CHEAP, **BIAS_VARIANTS}
    if a.set == "issue14":
        variants = {k: every[k] for k in ISSUE14}
    elif a.set == "bias":
        variants = dict(BIAS_VARIANTS)
    else:
        variants = {**VARIANTS, **(AIMET_VARIANTS if a.aimet else {})}
    if a.variants:
        variants = {k: v for k, v in every.items() if k in a.variants.split(";" if ";" in a.variants else ",")}
    deployed = deployed_results(ROOT / "docs" / "trained-zoo-results.jsonl") if a.set else None
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows: list[dict] = []

    def write(new: list[dict], final: bool = False) -> None:
        """After every row: a run cut short keeps what it measured, in the jsonl and in the table."""
        now = rows + new
        Path(a.out + ".jsonl").write_text("".join(json.dumps(r, default=str) + "\n" for r in now))
        order = {n: i for i, n in enumerate(names)}
        vorder = {v: i for i, v in enumerate([*variants, *CHEAP])}
        shown = sorted(now, key=lambda r: (order.get(r["model"], 99), vorder.get(r["variant"], 99)))
        head = ("# Quantization settings side by side on trained models (CPU QDQ simulation)\n\n"
                f"Command: `{sys.executable} bench/trained_quant_compare.py "
                + " ".join(shlex.quote(x) for x in sys.argv[1:]) + f"`, started {started}"
                + ("" if final else f", **still running** ({len(now)} rows so far)") + ". What each row is: see the "
                "script's docstring. Validation samples are the definition's own (real photos / audio); seconds "
                "are wall-clock for the stages up to quantize plus the CPU QDQ check, then the process's CPU seconds "
                "and the 1-minute load average at the row's end (2 cores shared).\n\n")
        Path(a.out + ".md").write_text(head + table(shown, deployed) + "\n")

    models: dict[str, Model | None] = {}
    for name in names:
        try:
            models[name] = Model(name, Path(a.work), a.stage_seconds)
        except Exception as e:  # noqa: BLE001 — compare() turns this into the model's error rows
            models[name] = None
            print(f"{name}: setup failed: {one_line(e)}", flush=True)
        rows += compare(name, Path(a.work), variants, a.stage_seconds, write, model=models[name]) \
            if models[name] else compare(name, Path(a.work), variants, a.stage_seconds, write)
    if a.set == "issue14":  # the costly techniques last: the six-variant table is complete before they start
        bounds = dict(zip(CHEAP, (a.seqmse_layers, a.adaround_layers)))
        rows += cheap_rows(models, bounds, Path(a.work), a.stage_seconds, write)
    write([], final=True)
    print(Path(a.out + ".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
