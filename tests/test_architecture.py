"""The package's layers hold: import-linter's contracts in pyproject.toml (`[tool.importlinter]`), and
the light planning commands, as a GitHub-hosted job runs them, loading no stage and no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"

LIGHT = """
import json, sys
from bot.changes import changed_models
from bot.fork_gate import plan_command, post_gate
from bot.pr_commands import parse
parse("/aipc retry"); parse("/aipc rerun quantize"); parse("/aipc revert int64-to-int32")
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnxruntime")
               or m.startswith(("bot.stages", "bot.pipeline.runner", "bot.backends", "bot.deploy", "bot.compose")))
print(json.dumps(heavy))
"""


def test_the_import_contracts_are_kept():
    """Layers (core ← backends ← stages ← repair ← agent ← report ← forge ← app / CLI), no cycle
    between siblings at any depth, and the light commands' forbidden imports, in-function ones included."""
    p = subprocess.run([sys.executable, "-c", LINT, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 broken" in p.stdout and "KEPT" in p.stdout, p.stdout


def test_the_light_planning_commands_load_no_stage_and_no_torch():
    p = subprocess.run([sys.executable, "-c", LIGHT], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1]) == []
