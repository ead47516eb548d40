"""An unchanged `aipc deploy` is cheap: every stage a cache hit, the forge with nothing to change, and
none of the heavy libraries imported (torch, onnx, onnxruntime, the graph-rewrite stack, matplotlib, numpy),
nor jinja2 (nothing to render).

The second deploy runs as a real CLI process (the way a user or a workflow runs it, forge on) that
reports which of those modules it ended up with; the first builds the deployment for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import write_model
from fake_github import sh

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "onnx", "onnxruntime", "onnx_ir", "onnxscript", "onnxslim", "sympy", "matplotlib",
         "jinja2",  # jinja2: the report and the PR body carry their render key, an unchanged one is not rendered
         "numpy")  # numpy (~0.15 s): every bot module imports it inside the functions that compute
PROBE = """
import json, sys
sys.argv = ["aipc", "deploy", sys.argv[1]]
from bot.cli import main
try:
    main()
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "heavy": sorted(m for m in %r if m in sys.modules)}), file=sys.stderr)
""" % (HEAVY,)


def _cli(model: Path, env: dict) -> tuple[dict, str]:
    p = subprocess.run([sys.executable, "-c", PROBE, str(model)], capture_output=True, text=True, cwd=ROOT,
                       env=env, timeout=600)
    return json.loads(p.stderr.strip().splitlines()[-1]), p.stdout + p.stderr


def test_an_unchanged_deploy_hits_every_cache_changes_nothing_and_imports_nothing_heavy(tmp_path):
    repo = tmp_path / "repo"
    model = write_model(repo / "models" / "tiny")
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    sh(repo, "add", "-A")
    sh(repo, "commit", "-q", "-m", "a model")
    # the forge on (its default, as a user runs it); no LLM key
    env = {k: v for k, v in os.environ.items() if k not in ("AIPC_FORGE", "AIPC_LLM_API_KEY", "OPENAI_API_KEY")}

    first, out = _cli(model, env)
    assert first["code"] == 0, out
    assert "torch" in first["heavy"] and "onnxruntime" in first["heavy"]  # the probe sees real work
    # a first deploy that needs no repair does not load the rewrite stack either (onnxscript, onnx_ir):
    # the optimize stage's exact cleanup and the host-part reader live outside the rules catalogue
    assert "onnxscript" not in first["heavy"] and "onnx_ir" not in first["heavy"], first["heavy"]
    tip = sh(repo, "rev-parse", "aipc/tiny")

    again, out = _cli(model, env)
    assert again["code"] == 0, out
    assert again["heavy"] == [], f"a fully cached deploy imported {again['heavy']}"
    assert out.count("(cached)") == 8, out
    assert "aipc/tiny: nothing changed" in out and "pull request unchanged" in out
    assert sh(repo, "rev-parse", "aipc/tiny") == tip
    manifest = json.loads((repo / "deployments" / "tiny" / "manifest.json").read_text())
    assert manifest["status"] == "deployed" and manifest["versions"]["torch"].startswith("2.")
