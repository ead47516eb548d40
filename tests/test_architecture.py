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
banned = ("bot.stages", "bot.pipeline.runner", "bot.backends", "bot.deploy", "bot.compose")
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnxruntime")
               or any(m == b or m.startswith(b + ".") for b in banned))  # bot.deployment_dir is not bot.deploy
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


#: the one boundary where deferring is the rule: each command imports its own work, so `aipc --help`,
#: the light commands and a fully cached deploy stay fast (bot/cli.py's docstring says so)
DEFERRING_MODULES = {"bot/cli.py"}


def in_function_imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, statement, says why) for each import inside a function: a comment on its line or the one above."""
    import ast

    src = path.read_text().splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(src))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    line, above = src[sub.lineno - 1], src[sub.lineno - 2] if sub.lineno > 1 else ""
                    found.append((sub.lineno, line.strip(), "#" in line or above.strip().startswith("#")))
    return found


def test_every_import_inside_a_function_says_why_it_is_deferred():
    """Imports inside functions hid import loops (issue 15): outside the CLI's boundary the ones left
    are heavy or optional packages, or a documented call-back, each with a comment saying why."""
    silent = [f"{p.relative_to(ROOT)}:{n}: {stmt}"
              for p in sorted((ROOT / "bot").rglob("*.py")) if "assets" not in p.parts
              and str(p.relative_to(ROOT)) not in DEFERRING_MODULES
              for n, stmt, why in in_function_imports(p) if not why]
    assert silent == [], "\n".join(silent)


def test_the_check_for_silent_deferred_imports_can_fail(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    import json\n\n\ndef g():\n    import torch  # deferred: heavy\n")
    assert [(n, why) for n, _, why in in_function_imports(f)] == [(2, False), (6, True)]
