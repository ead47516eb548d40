"""Seconds per stage for each example, and the bot's overhead over the bare toolchain.

    python bench/bench_pipeline.py [--runs 3] [--models esrgan_tiny,lprnet,tiny_classifier]

For each example, in one run, alternating A B A B: `aipc deploy` into a fresh folder (whole
process: imports, eight stages, store, manifest; the local forge's git commits are off here and
timed on their own in the last column) and `bench/bare_toolchain.py`
(the same library calls as one bare script). Prints medians, the ratio bot/bare per pair, the
per-stage seconds from the bot's manifest, and an unchanged re-run (every stage cached).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AIPC = [sys.executable, "-m", "bot.cli"]


def timed(cmd: list[str], forge: bool = False) -> float:
    env = {**os.environ, **({} if forge else {"AIPC_FORGE": "off"})}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--models", default="esrgan_tiny,lprnet,tiny_classifier")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models.split(","):
            model = str(ROOT / "models" / name)
            bot_t, bare_t, ratios = [], [], []
            out = Path(tmp) / name
            for i in range(a.runs + 1):  # the first pair warms caches and is not counted
                shutil.rmtree(out, ignore_errors=True)
                b = timed(AIPC + ["deploy", model, "--out", str(out), "--no-repair"])
                r = timed([sys.executable, str(ROOT / "bench" / "bare_toolchain.py"), model, str(Path(tmp) / "bare")])
                if i:
                    bot_t.append(b), bare_t.append(r), ratios.append(b / r)
            stages = {s["stage"]: s["seconds"] for s in json.loads((out / "manifest.json").read_text())["stages"]}
            rerun = statistics.median(timed(AIPC + ["deploy", model, "--out", str(out), "--no-repair"]) for _ in range(3))
            rows.append((name, statistics.median(bot_t), statistics.median(bare_t), statistics.median(ratios), rerun, stages))
    stage_names = list(rows[0][5])
    print("| model | " + " | ".join(stage_names) + " | bot (whole process) s | bare script s | bot/bare | unchanged re-run s |")
    print("|---|" + "---|" * (len(stage_names) + 4))
    for name, b, r, ratio, rerun, stages in rows:
        print(f"| {name} | " + " | ".join(f"{stages[s]:.2f}" for s in stage_names) +
              f" | {b:.2f} | {r:.2f} | {ratio:.3f} | {rerun:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
