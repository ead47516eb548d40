"""Quantization settings side by side on trained models, on onnxruntime's CPU QDQ simulation (issue 14).

    /work/venvs/trained/bin/python bench/trained_quant_compare.py --only deepsort_mobilenetv2

For each definition: the bot's stages up to `quantize` (load, export, optimize, quantize: no HTP compile,
so one variant costs seconds, not minutes), once per variant — per-tensor vs per-channel weights, at w8a8
and w8a16, MinMax vs MSE ranges — then the QDQ graph on onnxruntime's CPU, which computes the quantized
arithmetic (scales, zero points, rounding) as written, on every validation sample: pooled cosine, the
worst sample's cosine and the definition's task metrics against FP32. The HTP itself is measured by
bench/trained_zoo.py; this isolates what each quantization choice does to the numbers.
Writes `docs/trained-quant-compare.md` (and `.jsonl`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
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
CPU_STAGES = ["load", "export", "optimize", "quantize"]


def compare(name: str, work: Path, variants: dict[str, dict], stage_seconds: float | None = None,
            done=lambda rows: None) -> list[dict]:
    from bot import backends
    from bot import metrics as M
    from bot import samples as S
    from bot.repair.state import RepairState
    from bot.repair.loop import RepairLoop
    from bot.spec import load_spec
    from bot.stages._onnx import cpu_outputs
    from bot.task import check
    from trained_zoo import TRAINED, prepare, samples_of

    folder = TRAINED / name
    prepare(folder)
    spec, folder = load_spec(folder)
    if stage_seconds:  # AIMET's AdaRound / SeqMSE on a loaded CPU outlast the default stage limit
        spec = spec.model_copy(update={"limits": spec.limits.model_copy(update={"stage_seconds": stage_seconds})})
    labels = samples_of(spec, folder)[3] if spec.data else None
    loop = RepairLoop(spec, folder, work / name, backends.for_target(spec.target), workflow=CPU_STAGES)
    rows = []
    for variant, opts in variants.items():
        state = RepairState()
        for k, v in opts.items():
            state = state.with_option("quantize", k, v)
        t0 = time.perf_counter()
        run = loop.run_state(state)
        row = {"model": name, "variant": variant, "seconds": round(time.perf_counter() - t0, 1)}
        if not run.passed and (run.failure is None or run.failure.stage != "quantize"
                               or "quantize" not in run.dirs or not (run.dirs["quantize"] / "model.onnx").is_file()):
            rows.append({**row, "error": run.failure.message[:200] if run.failure else "did not run"})
            continue
        samples = S.load(run.dirs["load"] / "samples.npz")
        golden = S.load(run.dirs["load"] / "golden.npz")
        outs = cpu_outputs(run.dirs["quantize"] / "model.onnx", samples)
        names = list(golden[0])
        deployed = [dict(zip(names, o)) for o in outs]
        pooled = {n: M.cosine(M.concat([g[n] for g in golden]), M.concat([d[n] for d in deployed])) for n in names}
        per_sample = [min(M.cosine(g[n], d[n]) for n in names) for g, d in zip(golden, deployed)]
        task = check(spec.task, folder, golden, deployed, labels).results if spec.task else []
        rows.append({**row, "cosine": min(pooled.values()), "worst_sample_cosine": min(per_sample),
                     "worst_sample": int(min(range(len(per_sample)), key=per_sample.__getitem__)),
                     "task": [{"metric": r.metric, "passed": r.passed,
                               "figures": [(f.name, f.deployed) for f in r.figures if f.threshold is not None]}
                              for r in task],
                     "failure": run.failure.message[:200] if run.failure else None})
        print(json.dumps(rows[-1], default=str), flush=True)
        done(rows)
    return rows


def table(rows: list[dict]) -> str:
    out = ["| model | variant | cosine (pooled) | worst sample cosine | task (CPU QDQ) | s |", "|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['model']} | {r['variant']} | error: {r['error']} | | | {r['seconds']} |")
            continue
        task = "; ".join(f"{t['metric']}: " + ", ".join(f"{v:.3f}" if isinstance(v, float) else str(v)
                                                       for _, v in t["figures"]) + ("" if t["passed"] else " ✗")
                         for t in r["task"]) or "—"
        out.append(f"| {r['model']} | {r['variant']} | {r['cosine']:.4f} | {r['worst_sample_cosine']:.4f} "
                   f"(#{r['worst_sample']}) | {task} | {r['seconds']} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="deepsort_mobilenetv2")
    ap.add_argument("--work", default=str(HERE / "out" / "quant-compare"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "trained-quant-compare"))
    ap.add_argument("--aimet", action="store_true", help="also AIMET's QuantSim, CLE and SeqMSE (needs aimet-onnx)")
    ap.add_argument("--variants", default=None, help="variant names separated by ';' (or ',' when no name "
                                                     "has one) (default: all)")
    ap.add_argument("--stage-seconds", type=float, default=None, help="one stage's time limit (the definition's)")
    a = ap.parse_args()
    variants = {**VARIANTS, **(AIMET_VARIANTS if a.aimet else {})}
    if a.variants:
        variants = {k: v for k, v in variants.items() if k in a.variants.split(";" if ";" in a.variants else ",")}
    rows: list[dict] = []

    def write(new: list[dict]) -> None:  # after every row: a run cut short keeps what it measured
        Path(a.out + ".jsonl").write_text("".join(json.dumps(r, default=str) + "\n" for r in rows + new))

    for name in a.only.split(","):
        rows += compare(name, Path(a.work), variants, a.stage_seconds, write)
    write([])
    head = ("# Quantization settings side by side on trained models (CPU QDQ simulation)\n\n"
            f"Command: `{sys.executable} bench/trained_quant_compare.py "
            + " ".join(shlex.quote(x) for x in sys.argv[1:]) + "`. What each row is: see the script's docstring. Validation samples are the "
            "definition's own (real photos / audio); seconds include the stages up to quantize.\n\n")
    Path(a.out + ".md").write_text(head + table(rows) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
