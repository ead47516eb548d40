"""Regenerate `docs/pr-samples/` from real deployments: `python -m bot.report.pr_samples <deployment>...`.

Each sample keeps the manifest it was rendered from, so a test can re-render it and fail when the
templates change without the samples being refreshed.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from bot.errors import BadInput
from bot.manifest import MANIFEST, Manifest
from bot.report import html_report, pr_body
from bot.store import read_json

SAMPLES = Path(__file__).resolve().parents[2] / "docs" / "pr-samples"


def write_sample(deployment: Path, dest: Path = SAMPLES) -> Path:
    manifest = read_json(Path(deployment) / MANIFEST)  # kept as written: the sample stores it beside the texts
    if not isinstance(manifest, dict):
        raise BadInput("not a deployment's manifest (missing, or not a JSON object)", where=str(Path(deployment) / MANIFEST))
    name = Manifest.parse(manifest).model
    folder = dest / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    html_report(manifest, folder)
    md = dest / f"{name}.md"
    md.write_text(pr_body(manifest, images={"seconds": f"{name}/seconds_per_stage.png"},
                          links={"HTML report": f"{name}/index.html"}))
    return md


if __name__ == "__main__":
    for d in sys.argv[1:]:
        print(write_sample(Path(d)))
