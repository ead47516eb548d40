"""`aipc --version` says the version the callers' workflows pin, and it is pyproject's."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from bot import __version__

ROOT = Path(__file__).resolve().parents[1]


def test_version_is_pyprojects_and_the_cli_prints_it():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert __version__ == declared
    p = subprocess.run([sys.executable, "-m", "bot.cli", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0 and p.stdout.strip() == f"aipc {declared}", p.stdout + p.stderr
