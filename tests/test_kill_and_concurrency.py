"""`aipc deploy` killed with SIGKILL during each of the eight stages, and eight deploys of one model
at once: nothing finished is lost, nothing half-written is used, no run crashes, the bot branch
stays linear."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.pipeline.runner import default_workflow
from bot.store import sha256_file
from tests.conftest import write_model

SMALL = '''
import torch
import torch.nn as nn


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.c(x))


def build():
    torch.manual_seed(0)
    return Small().eval()
'''
SPEC = {"inputs": [{"name": "x", "shape": [1, 3, 8, 8]}], "calibration": {"samples": 2}}
ROOT = Path(__file__).resolve().parents[1]


def aipc(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bot.cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def stage_lines(stderr: str) -> dict[str, str]:
    """`[i/8] stage ✓ …` lines by stage (the CLI prints one as each stage ends)."""
    out = {}
    for line in stderr.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("[") and parts[0].endswith("/8]"):
            out[parts[1]] = line
    return out


def check_store_and_manifest(out: Path) -> int:
    """Every finished store entry's files match its recorded digests; every artifact the manifest lists
    and that exists matches its sha256. Returns the number of artifacts checked."""
    for entry in (out / ".work").iterdir():
        result = entry / "result.json"
        if entry.is_dir() and not entry.name.endswith(".partial") and result.is_file():
            r = json.loads(result.read_text())
            for name, digest in r.get("digests", {}).items():
                assert sha256_file(entry / r["artifacts"][name]) == digest, f"corrupt {entry.name}/{name}"
    m = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else {"artifacts": {}}
    n = 0
    for rel, meta in m["artifacts"].items():
        if (out / rel).exists():
            assert sha256_file(out / rel) == meta["sha256"], f"{rel} disagrees with the manifest"
            n += 1
    return n


@pytest.mark.htp
def test_killed_in_each_stage_resumes_with_nothing_lost_or_corrupt(tmp_path):
    folder = write_model(tmp_path / "m", SPEC, code=SMALL)
    out = tmp_path / "o"
    stages = default_workflow()
    killed_in, reused = [], {}
    for k, stage in enumerate(stages):
        proc = aipc("deploy", str(folder), "--out", str(out), "--no-repair")
        seen = False
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            store = out / ".work"
            if store.is_dir() and any(p.name.startswith(f"{stage}-") and p.name.endswith(".partial")
                                      for p in store.iterdir()):
                seen = True
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        _, err = proc.communicate(timeout=60)
        assert seen and proc.returncode == -signal.SIGKILL, f"never caught {stage} running:\n{err}"
        killed_in.append(stage)
        lines = stage_lines(err)
        # the stages finished by earlier (killed) runs were reused, the one killed last time re-ran
        for done in stages[:max(k - 1, 0)]:
            assert "(cached)" in lines[done], f"{done} was finished before but re-ran:\n{err}"
        if k >= 1:
            assert "(cached)" not in lines[stages[k - 1]], f"{stages[k - 1]} was killed, it cannot be cached"
        reused[stage] = sum("(cached)" in line for line in lines.values())
        check_store_and_manifest(out)
    final = aipc("deploy", str(folder), "--out", str(out), "--no-repair")
    _, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    lines = stage_lines(err)
    assert all("(cached)" in lines[s] for s in stages[:-1]) and "(cached)" not in lines["package"], err
    assert check_store_and_manifest(out) > 0
    again = aipc("validate", str(folder), "--out", str(out))
    vout, verr = again.communicate(timeout=600)
    assert again.returncode == 0 and "match the manifest" in vout, vout + verr
    assert killed_in == stages
    assert [reused[s] for s in stages] == [0, 0, 1, 2, 3, 4, 5, 6], reused  # run k reused the k-1 stages before


@pytest.mark.htp
def test_eight_concurrent_deploys_of_one_model(tmp_path, monkeypatch):
    monkeypatch.delenv("AIPC_FORGE", raising=False)  # the local forge: commits to aipc/<model>
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    write_model(work / "models" / "tiny", SPEC, code=SMALL)
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "add tiny"], check=True)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    procs = [aipc("deploy", "models/tiny", "--no-repair", cwd=work, env=env) for _ in range(8)]
    results = [p.communicate(timeout=900) for p in procs]
    codes = [p.returncode for p in procs]
    errs = [e for _, e in results]
    assert codes == [0] * 8, "\n----\n".join(errs)
    assert not any("Traceback" in e for e in errs)
    worked = [e for e in errs if any("(cached)" not in line for line in stage_lines(e).values())]
    assert len(worked) == 1, f"{len(worked)} runs executed stages"  # one did the work, seven reused it
    assert any("waiting for it to finish" in e for e in errs)  # and said they were waiting
    log = subprocess.run(git + ["rev-list", "--parents", "aipc/tiny"], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert all(len(line.split()) <= 2 for line in log), "a merge commit on the bot branch"
    first_parent = subprocess.run(git + ["rev-list", "--first-parent", "aipc/tiny"], capture_output=True,
                                  text=True, check=True).stdout.splitlines()
    assert len(first_parent) == len(log)  # linear
    subjects = subprocess.run(git + ["log", "--format=%s", "main..aipc/tiny"], capture_output=True, text=True,
                              check=True).stdout.splitlines()
    assert sum(s.startswith("aipc(tiny): manifest and report") for s in subjects) == 1, subjects
    out = work / "deployments" / "tiny"
    assert check_store_and_manifest(out) > 0
    assert json.loads((out / "manifest.json").read_text())["status"] == "deployed"
