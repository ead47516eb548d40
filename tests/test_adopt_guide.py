"""docs/adopt.md, followed as a user would: every `sh` block of its walkthrough and workflows sections,
in order, in a brand-new folder, with the `aipc` command on PATH, and the model file it shows. A
brand-new git repository with only a model file → aipc init → aipc plan → aipc deploy → the PR body
→ aipc init --workflows; nothing is called in-process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.spec.json_schema import SCHEMA_FILE, schema_errors

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "adopt.md"
BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```", re.S | re.M)


def guide_steps() -> list[tuple[str, str, str]]:
    """(kind, text, file) of each runnable block from '## Walkthrough' to the next section after
    '## The workflows'; a python block is the file named in the paragraph before it."""
    text = GUIDE.read_text()
    start, end = text.index("## Walkthrough"), text.index("## What `aipc init` cannot infer")
    steps, last = [], start
    for m in BLOCK.finditer(text, start, end):
        before = text[last:m.start()]
        files = re.findall(r"`([\w/.-]+\.py)`", before)
        steps.append((m.group(1), m.group(2), files[0] if m.group(1) == "python" else ""))
        last = m.end()
    return steps


def test_the_guide_has_the_steps_this_test_runs():
    kinds = [k for k, _, _ in guide_steps()]
    commands = "\n".join(t for k, t, _ in guide_steps() if k == "sh")
    assert kinds.count("python") == 1 and kinds.count("sh") >= 5
    for step in ("git init", "aipc init models/", "aipc plan", "aipc deploy", ".git/aipc/prs/", "aipc init --workflows"):
        assert step in commands, step


def run_block(script: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=900)
    assert p.returncode == 0, f"guide step failed ({p.returncode}):\n{script}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}"
    return p


@pytest.mark.htp
def test_following_the_guide_deploys_a_model_from_a_new_repository(tmp_path):
    repo = tmp_path / "my-models"
    repo.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIPC_", "GITHUB_"))}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", PYTHONWARNINGS="ignore",
               GIT_AUTHOR_NAME="guide", GIT_AUTHOR_EMAIL="guide@example.com", GIT_COMMITTER_NAME="guide",
               GIT_COMMITTER_EMAIL="guide@example.com", HOME=str(tmp_path))
    printed = []
    for kind, text, file in guide_steps():
        if kind == "python":
            (repo / file).parent.mkdir(parents=True, exist_ok=True)
            (repo / file).write_text(text)
        else:
            printed.append(run_block(text, repo, env).stdout)
    out = "\n".join(printed)

    # aipc init: the definition it wrote is what the guide says
    definition = repo / "models" / "tiny_net" / "aipc.yaml"
    text = definition.read_text()
    assert text.startswith("# yaml-language-server: $schema=https://raw.githubusercontent.com/your-org/aipc-bot/v")
    assert text.splitlines()[0].endswith(SCHEMA_FILE)
    raw = yaml.safe_load(text)
    assert raw["entry"] == "model.py:TinyNet"
    assert raw["inputs"] == [{"name": "image", "shape": [1, 3, 16, 16], "dtype": "float32", "range": [0.0, 1.0]}]
    assert raw["outputs"] == ["output"]
    assert schema_errors(raw) == []
    assert "load stage: passed; the model returns output [1, 4, 8, 8]" in out
    assert "not inferred: output names" in out

    # aipc plan before the deploy: nothing is in the store; after it, everything is
    first_plan, last_plan = [p for p in printed if "resolved definition" in p][0], printed[-2]
    assert "never deployed here" in first_plan and "✓ cached" not in first_plan
    assert re.search(r"^    precision: w8a16$", first_plan, re.M), "the resolved definition shows the defaults"
    stages = re.findall(r"^  (\w+) +✓ cached", last_plan, re.M)
    assert stages == ["load", "export", "optimize", "compat", "quantize", "compile", "validate", "package"]

    # aipc deploy: deployed, committed to the bot branch, and the PR body the guide prints
    manifest = yaml.safe_load((repo / "deployments" / "tiny_net" / "manifest.json").read_text())
    assert manifest["status"] == "deployed"
    assert (repo / "deployments" / "tiny_net" / "package" / "interface.json").is_file()
    body = (repo / ".git" / "aipc" / "prs" / "tiny_net.md").read_text()
    assert body.strip() and body.strip() in out  # `cat` printed it
    assert "tiny_net" in body and "validate" in body and "cosine" in body
    branch = subprocess.run(["git", "log", "--format=%s", "aipc/tiny_net"], cwd=repo, env=env, capture_output=True,
                            text=True, check=True).stdout
    assert "aipc(tiny_net): validate passed" in branch

    # aipc init --workflows: three workflows pinned to this version's tag, committed
    from bot import __version__

    for name in ("aipc-deploy.yml", "aipc-commands.yml", "aipc-nightly.yml"):
        wf = (repo / ".github" / "workflows" / name).read_text()
        assert f"@v{__version__}" in wf or f"ref: v{__version__}" in wf
    tracked = subprocess.run(["git", "ls-files", ".github"], cwd=repo, env=env, capture_output=True, text=True,
                             check=True).stdout.split()
    assert ".github/workflows/aipc-deploy.yml" in tracked
