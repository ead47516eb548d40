"""`aipc report` and `aipc nightly`: reports for deployments that already exist.

Kept out of `bot/cli.py` so the CLI stays a list of thin commands; each function returns the exit
code (0 all good, 1 something failed) and raises `BadInput` for the user's mistakes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from bot.errors import BadInput
from bot.pipeline.manifest import MANIFEST
from bot.store import read_json


def report_command(model: Path, *, out_dir: Path | None = None, html_dir: Path | None = None,
                   body_file: Path | None = None, echo: Callable[[str], None] = print) -> int:
    """Render the PR body (stdout or `body_file`) and the HTML report for an existing deployment."""
    from bot.cli_paths import resolve_out_dir
    from bot.report import html_report, pr_body
    from bot.spec import load_spec

    spec, folder = load_spec(model)
    out = resolve_out_dir(folder, spec.name, out_dir)
    manifest = read_json(out / MANIFEST)
    if not manifest:
        raise BadInput("no manifest.json: deploy this model first (aipc deploy)", where=str(out))
    html = html_report(manifest, Path(html_dir) if html_dir else out / "report")
    body = pr_body(manifest, images={"seconds": str(html.parent / "seconds_per_stage.png")},
                   links={"HTML report": str(html)})
    if body_file:
        Path(body_file).write_text(body)
        echo(f"PR body: {body_file}")
    else:
        echo(body)
    echo(f"HTML report: {html}")
    return 0 if manifest.get("status") == "deployed" else 1


def find_model_dir(root: Path, name: str) -> Path | None:
    """The model folder a deployment came from: `models/<name>`, else any aipc.yaml naming it."""
    import yaml

    guess = root / "models" / name
    if (guess / "aipc.yaml").is_file():
        return guess
    for spec in sorted(root.glob("**/aipc.yaml")):
        if "deployments" in spec.parts or ".work" in spec.parts:
            continue
        try:
            if (yaml.safe_load(spec.read_text()) or {}).get("name") == name:
                return spec.parent
        except (OSError, yaml.YAMLError):
            continue
    return None


def nightly_command(root: Path | None = None, *, out_file: Path | None = None,
                    echo: Callable[[str], None] = print, revalidate=None) -> int:
    """Re-validate every deployment under `<root>/deployments/` and render one summary.

    The summary also goes to `$GITHUB_STEP_SUMMARY` when set, so the nightly job shows it.
    Composite deployments are re-validated part by part.
    """
    from bot.cli_paths import repo_root
    from bot.report import nightly

    if revalidate is None:
        from bot.deploy import revalidate
    root = Path(root) if root else (repo_root(Path.cwd()) or Path.cwd())
    deployments = sorted(p.parent for p in (root / "deployments").glob(f"*/{MANIFEST}"))
    if not deployments:
        raise BadInput("no deployments to re-validate", where=str(root / "deployments"))
    entries = []
    for dep in deployments:
        manifest = read_json(dep / MANIFEST) or {}
        name = manifest.get("model") or dep.name
        entry = {"model": name, "manifest": manifest, "passed": False, "lines": []}
        model_dir = find_model_dir(root, name)
        if model_dir is None:
            entry["error"] = f"no model folder with aipc.yaml for {name!r} under {root}"
        else:
            try:
                r = revalidate(model_dir, out_dir=dep)
                entry.update(passed=r.passed, lines=r.lines)
            except BadInput as e:
                entry["error"] = e.paragraph()
        entries.append(entry)
    text = nightly(entries)
    if out_file:
        Path(out_file).write_text(text)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as f:
            f.write(text + "\n")
    echo(text)
    return 0 if all(e["passed"] or e.get("skipped") for e in entries) else 1
