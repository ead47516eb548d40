"""The repair planner's search, measured: attempts, wall seconds and deployed precision per case.

    python bench/planner_search.py                      # this checkout's bot
    PYTHONPATH=/path/to/other/checkout python bench/planner_search.py --label before

Each case is a tiny model whose failure needs the planner to choose: a bar only fp16 meets, an
error carried by the weights (per-channel first pays), an outlier activation (16 bits where
localization points), and a detector whose packed output is not declared. The bot under test is
whichever `bot` package Python imports first (PYTHONPATH can point at another checkout), so
the same cases measure before and after a change. Writes one JSON line per case to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))  # after PYTHONPATH: only for the test models, never for `bot`


def cases() -> dict[str, tuple[str, dict]]:
    from tests.conftest import TINY_MODEL
    from tests.test_planner import WEIGHT_SPREAD
    from tests.test_packed_output import TINY_DETECTOR
    from tests.test_repair_loop import OUTLIER

    w8a8 = {"target": {"precision": "w8a8"}, "limits": {"llm_budget_usd": 0}}
    return {
        "fp16-only-bar": (TINY_MODEL, {**w8a8, "validation": {"samples": 2, "outputs": {"y": {"sqnr_min_db": 52}}}}),
        "weights-carry": (WEIGHT_SPREAD, {**w8a8, "inputs": [{"name": "x", "shape": [1, 4, 16, 16], "range": [0, 1]}],
                                          "validation": {"samples": 2, "outputs": {"y": {"sqnr_min_db": 30}}}}),
        "outlier": (OUTLIER, {**w8a8, "validation": {"samples": 2}}),
        "packed-undeclared": (TINY_DETECTOR, {**w8a8, "outputs": ["output"],
                                              "validation": {"samples": 2, "outputs": {"output": {"sqnr_min_db": 15}}}}),
    }


def run_case(name: str, code: str, spec: dict, work: Path) -> dict:
    from bot.deploy import deploy

    folder = work / name
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(textwrap.dedent(code))
    base = {"name": name, "entry": "model.py:build", "inputs": [{"name": "x", "shape": [1, 3, 16, 16], "range": [0, 1]}],
            "outputs": ["y"], "calibration": {"samples": 4}, "validation": {"samples": 1}}
    base.update(spec)
    (folder / "aipc.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    t0 = time.perf_counter()
    outcome = deploy(folder, out_dir=work / f"{name}-out")
    seconds = time.perf_counter() - t0
    repairs = outcome.manifest.get("repairs") or []
    q = outcome.result("quantize")
    v = outcome.result("validate")
    return {"case": name, "passed": outcome.passed, "attempts": len(repairs), "wall_seconds": round(seconds, 1),
            "precision": q.metrics.get("precision") if q else None,
            "kept": [n for r in repairs if r.get("kept") for n in [r["repair"], *r.get("composed", [])]],
            "tried": [" + ".join([r["repair"], *r.get("composed", [])]) for r in repairs],
            "checked": sorted((v.metrics.get("outputs") or {})) if v else None,
            "stopped": (outcome.manifest.get("repair_state") or {}).get("stopped")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", default="after")
    ap.add_argument("--cases", default="")
    ap.add_argument("--screen", type=int, default=None, help="override limits.screen (the planner's CPU screening)")
    ap.add_argument("--order", default=None, help="override limits.order (gain | catalogue)")
    args = ap.parse_args()
    os.environ.setdefault("AIPC_FORGE", "off")
    import bot

    chosen = {k: v for k, v in cases().items() if not args.cases or k in args.cases.split(",")}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (code, spec) in chosen.items():
            for key in ("screen", "order"):
                if getattr(args, key) is not None:
                    spec = {**spec, "limits": {**spec.get("limits", {}), key: getattr(args, key)}}
            row = run_case(name, code, spec, Path(tmp))
            print(json.dumps({"label": args.label, "bot": str(Path(bot.__file__).parent), **row}), flush=True)


if __name__ == "__main__":
    main()
