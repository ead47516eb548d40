"""Seconds per stage for each example, and the bot's overhead over the bare toolchain, as a user runs it.

    python bench/bench_pipeline.py [--runs 3] [--models esrgan_tiny,lprnet,tiny_classifier] [--forge on|off]

For each example, in one run, alternating A B A B (the first pair warms caches and is not counted):

- A: `aipc deploy models/<name>` as a whole process, the way `aipc deploy` runs by default: forge and report
  on (the local forge commits every stage to `aipc/<name>` and renders the PR body, the HTML report and its
  plots). The model is copied into a scratch git repository so the forge writes there, not into this
  checkout; before each counted run its deployment folder and bot branch are removed, so every run is a
  first deploy. `--forge off` times the stages alone (`AIPC_FORGE=off`), as issue 2 measured it.
- B: `bench/bare_toolchain.py`, the same library calls as one bare script (no store, keys, manifest,
  report or forge).

Prints medians of wall and CPU seconds (user + sys of the process and its children), the ratio bot/bare per
pair, the bot's fixed overhead (bot − bare), the per-stage seconds from the bot's manifest, and an unchanged
re-run (every stage cached, the forge with nothing to change) — the fixed cost of the bot alone. The load
average is printed with each row: on a shared machine the absolute seconds move with it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AIPC = [sys.executable, "-m", "bot.cli"]
GIT_ID = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
          "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}


def timed(cmd: list[str], env: dict, cwd: Path = ROOT) -> tuple[float, float]:
    """(wall, cpu) seconds of one whole process, its children included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env={**os.environ, **GIT_ID})


def scratch_repo(tmp: Path, name: str) -> Path:
    repo = tmp / f"repo-{name}"
    shutil.copytree(ROOT / "models" / name, repo / "models" / name, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / ".gitignore").write_text("__pycache__/\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", name)
    return repo


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--models", default="esrgan_tiny,lprnet,tiny_classifier")
    ap.add_argument("--forge", choices=("on", "off"), default="on")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("AIPC_LLM_API_KEY", "OPENAI_API_KEY", "AIPC_FORGE")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's Python keeps its bytecode caches
    if a.forge == "off":
        env["AIPC_FORGE"] = "off"
    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for name in a.models.split(","):
            repo = scratch_repo(tmp, name)
            model, out = repo / "models" / name, repo / "deployments" / name
            bot, bare, ratios, cpu_ratios = [], [], [], []
            load0 = load()
            for i in range(a.runs + 1):
                shutil.rmtree(out, ignore_errors=True)
                subprocess.run(["git", "-C", str(repo), "branch", "-q", "-D", f"aipc/{name}"], capture_output=True)
                b = timed(AIPC + ["deploy", str(model)], env)
                r = timed([sys.executable, str(ROOT / "bench" / "bare_toolchain.py"), str(model), str(tmp / "bare")], env)
                if i:
                    bot.append(b), bare.append(r), ratios.append(b[0] / r[0]), cpu_ratios.append(b[1] / r[1])
            manifest = json.loads((out / "manifest.json").read_text())
            stages = {s["stage"]: s["seconds"] for s in manifest["stages"]}
            reruns = [timed(AIPC + ["deploy", str(model)], env) for _ in range(4)][1:]
            med = lambda xs, k: statistics.median(x[k] for x in xs)  # noqa: E731
            rows.append({"model": name, "stages": stages, "bot_wall": med(bot, 0), "bot_cpu": med(bot, 1),
                         "bare_wall": med(bare, 0), "bare_cpu": med(bare, 1),
                         "ratio_wall": statistics.median(ratios), "ratio_cpu": statistics.median(cpu_ratios),
                         "rerun_wall": med(reruns, 0), "rerun_cpu": med(reruns, 1), "load": f"{load0} → {load()}"})
    names = list(rows[0]["stages"])
    print(f"forge and report: {a.forge}; medians of {a.runs} pairs")
    print("| model | " + " | ".join(names) + " | bot wall s | bare wall s | bot/bare wall | bot CPU s | bare CPU s "
          "| bot/bare CPU | fixed overhead s (wall) | unchanged re-run s (wall / CPU) | load avg |")
    print("|---|" + "---|" * (len(names) + 10))
    for r in rows:
        print(f"| {r['model']} | " + " | ".join(f"{r['stages'][s]:.2f}" for s in names) +
              f" | {r['bot_wall']:.2f} | {r['bare_wall']:.2f} | {r['ratio_wall']:.3f} | {r['bot_cpu']:.2f} | "
              f"{r['bare_cpu']:.2f} | {r['ratio_cpu']:.3f} | {r['bot_wall'] - r['bare_wall']:.2f} | "
              f"{r['rerun_wall']:.2f} / {r['rerun_cpu']:.2f} | {r['load']} |")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
