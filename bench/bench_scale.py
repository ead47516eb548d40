"""The nightly and `aipc changed` on a synthetic repository of many small models (generated here, not committed).

    python bench/bench_scale.py [--models 100] [--distinct 4] [--workers 1,2,4] [--keep DIR]

1. Writes `--distinct` tiny convolutional models (different widths and seeds) into a fresh git repository and
   deploys each for real (`aipc deploy --no-repair`, forge off); then copies them under new names up to
   `--models` folders, each with its own deployment (manifest renamed), as a team's repository would hold
   them. Two copies get an accepted SQNR 6 dB better than tonight's toolchain gives, committed on main,
   so the merged report must name exactly those two.
2. For each worker count W: the nightly as `nightly.yml` runs it, with processes standing in for runners:
   `aipc nightly-plan --shards W`, W `aipc nightly --deployments … --results …` processes at once, then
   `aipc nightly-merge --expected …`. Wall time from plan to merged report; CPU seconds of all of them.
3. `aipc changed` (a whole process) on a push that touches 1 model and on one that touches every model.

Every nightly shard re-checks its share in full (artifact hashes, placement, compile, validate on the
simulated HTP). The machine's load average is printed beside each figure: on a shared 2-core machine the
walls move with it, more workers than cores cannot help, and the simulator's latency is noise (hence the
wide latency tolerance here, which only keeps load out of the regression rows).
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
WIDTHS = (4, 6, 8, 12)
GIT_ID = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
          "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}
CALM = ["--tolerance", "latency_rel=100", "--tolerance", "latency_abs_ms=10000"]

MODEL = '''
import torch
import torch.nn as nn


def build():
    torch.manual_seed({seed})
    return nn.Sequential(nn.Conv2d(3, {width}, 3, padding=1), nn.ReLU(), nn.Conv2d({width}, 4, 3, padding=1)).eval()
'''
SPEC = """name: {name}
entry: model.py:build
inputs:
  - {{name: x, shape: [1, 3, 16, 16], range: [0.0, 1.0]}}
outputs: [y]
calibration: {{samples: 4}}
validation:
  samples: 1
  outputs:
    y: {{cosine_min: 0.95}}
"""


def sh(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ID}).stdout.strip()


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def build_repository(root: Path, models: int, distinct: int, env: dict) -> list[str]:
    names = [f"m{i:03d}" for i in range(models)]
    for i, name in enumerate(names[:distinct]):
        folder = root / "models" / name
        folder.mkdir(parents=True)
        (folder / "model.py").write_text(MODEL.format(seed=i, width=WIDTHS[i % len(WIDTHS)]))
        (folder / "aipc.yaml").write_text(SPEC.format(name=name))
        t0 = time.perf_counter()
        p = subprocess.run(AIPC + ["deploy", str(folder), "--no-repair", "--out", str(root / "deployments" / name)],
                           capture_output=True, text=True, env=env)
        if p.returncode:
            raise SystemExit(f"deploy of {name} failed:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
        print(f"  deployed {name} for real in {time.perf_counter() - t0:.1f} s (load {load()})", flush=True)
    for j, name in enumerate(names[distinct:], distinct):
        src = names[j % distinct]
        folder = root / "models" / name
        shutil.copytree(root / "models" / src, folder, ignore=shutil.ignore_patterns("__pycache__"))
        (folder / "aipc.yaml").write_text(SPEC.format(name=name))
        dep = root / "deployments" / name
        shutil.copytree(root / "deployments" / src, dep, symlinks=True, ignore=shutil.ignore_patterns(".work"))
        m = json.loads((dep / "manifest.json").read_text())
        m["model"] = name
        (dep / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")
    (root / ".gitignore").write_text(".work/\n__pycache__/\n")
    sh(root, "init", "-q", "-b", "main")
    sh(root, "add", "-A")
    sh(root, "commit", "-q", "-m", f"{models} deployed models")
    return names


def accept_better(root: Path, names: list[str]) -> None:
    """As if main had accepted these under a toolchain that gave 6 dB more SQNR: tonight regresses them."""
    for name in names:
        path = root / "deployments" / name / "manifest.json"
        m = json.loads(path.read_text())
        val = next(s for s in m["stages"] if s["stage"] == "validate")
        val["metrics"]["outputs"]["y"]["sqnr_db"] += 6.0
        path.write_text(json.dumps(m, indent=2) + "\n")
    sh(root, "commit", "-q", "-am", f"{', '.join(names)} accepted with 6 dB more SQNR")


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def night(root: Path, workers: int, env: dict, tmp: Path) -> dict:
    out = tmp / f"w{workers}"
    out.mkdir()
    history = out / "history.jsonl"
    cpu0, load0, t0 = children_cpu(), load(), time.perf_counter()
    gh = out / "github-output"
    subprocess.run(AIPC + ["nightly-plan", "--root", str(root), "--shards", str(workers), "--output", str(gh)],
                   check=True, capture_output=True, env=env)
    outputs = dict(line.split("=", 1) for line in gh.read_text().splitlines())
    shards = json.loads(outputs["matrix"])["include"]
    started = {}
    for s in shards:
        cmd = AIPC + ["nightly", "--root", str(root), "--deployments", s["deployments"], "--run-id", f"bench-w{workers}",
                      "--history", str(history), "--results", str(out / "shards" / f"shard-{s['shard']}.json"), *CALM]
        started[s["shard"]] = (subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                                env=env), time.perf_counter())
    shard_walls = []
    for k, (proc, ts) in started.items():
        _, err = proc.communicate()
        shard_walls.append(time.perf_counter() - ts)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"shard {k} exited {proc.returncode}:\n{err[-2000:]}")
    report = out / "report.md"
    merged = subprocess.run(AIPC + ["nightly-merge", str(out / "shards"), "--root", str(root), "--history",
                                    str(history), "--expected", outputs["deployments"], "--summary", str(report)],
                            capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    text = report.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")
            and "|" in line[3:] and line.split("|")[2].strip() in ("accuracy", "failure", "placement", "latency")]
    lines = [json.loads(x) for x in history.read_text().splitlines()]
    return {"workers": workers, "shards": len(shards), "wall_s": wall, "cpu_s": children_cpu() - cpu0,
            "shard_walls_s": shard_walls, "exit": merged.returncode, "headline": text.splitlines()[0],
            "rows": rows, "history_lines": len(lines), "load_before": load0, "load_after": load(),
            "report_bytes": len(text.encode())}


def changed(root: Path, names: list[str], env: dict, runs: int) -> list[dict]:
    out = []
    for touched in (names[:1], names):
        for n in touched:
            with open(root / "models" / n / "aipc.yaml", "a") as f:
                f.write("# touched\n")
        sh(root, "commit", "-q", "-am", f"touch {len(touched)} model(s)")
        times, listed, load0 = [], None, load()
        for i in range(runs + 1):
            t0 = time.perf_counter()
            p = subprocess.run(AIPC + ["changed", "--root", str(root), "--base", "HEAD~1", "--head", "HEAD"],
                               capture_output=True, text=True, env=env, check=True)
            if i:  # the first run warms the caches and is not counted
                times.append(time.perf_counter() - t0)
            listed = json.loads(p.stdout)
        assert listed == sorted(touched), (len(listed), len(touched))
        out.append({"touched": len(touched), "listed": len(listed), "median_s": statistics.median(times),
                    "min_s": min(times), "max_s": max(times), "load": load0})
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--distinct", type=int, default=4, help="models deployed for real; the rest are copies")
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--changed-runs", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="build the repository here and keep it (default: a temporary folder)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args()
    env = {**os.environ, "AIPC_FORGE": "off", "PYTHONWARNINGS": "ignore"}
    env.pop("AIPC_LLM_API_KEY", None), env.pop("OPENAI_API_KEY", None)
    tmp = Path(tempfile.mkdtemp(prefix="aipc-scale-"))
    root = a.keep or tmp / "repo"
    root.mkdir(parents=True, exist_ok=False)
    print(f"building {a.models} models ({a.distinct} deployed for real) in {root}", flush=True)
    names = build_repository(root, a.models, a.distinct, env)
    regressed = [names[a.distinct], names[-1]]
    accept_better(root, regressed)
    nights = []
    for w in (int(x) for x in a.workers.split(",")):
        r = night(root, w, env, tmp)
        nights.append(r)
        print(f"  {w} worker(s): {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, shards "
              f"{', '.join(f'{s:.0f}' for s in r['shard_walls_s'])} s; {r['headline']} (load {r['load_before']} → "
              f"{r['load_after']})", flush=True)
        assert r["exit"] == 1 and r["history_lines"] == a.models, r
        assert sorted(row.split("`")[1] for row in r["rows"]) == sorted(regressed), r["rows"]
    ch = changed(root, names, env, a.changed_runs)
    print("\n| workers (processes) | shards | nightly wall s | CPU s (all processes) | slowest shard s | merged report | load avg before → after |")
    print("|---|---|---|---|---|---|---|")
    for r in nights:
        print(f"| {r['workers']} | {r['shards']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {max(r['shard_walls_s']):.1f} | "
              f"{r['headline'].removeprefix('## aipc nightly: ')}; {len(r['rows'])} rows, {r['history_lines']} history "
              f"lines, {r['report_bytes']} bytes | {r['load_before']} → {r['load_after']} |")
    print("\n| push touches | models listed | `aipc changed` median s (min–max) | load avg |")
    print("|---|---|---|---|")
    for c in ch:
        print(f"| {c['touched']} model(s) | {c['listed']} | {c['median_s']:.2f} ({c['min_s']:.2f}–{c['max_s']:.2f}) | {c['load']} |")
    if a.json:
        a.json.write_text(json.dumps({"models": a.models, "distinct": a.distinct, "nights": nights, "changed": ch},
                                     indent=2))
    if not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
