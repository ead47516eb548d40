"""`manifest.json`: the one record of a deployment a person or a program can trust.

It lists every published artifact with sha256 and size, tool and library versions, seconds and
checks per stage, the repairs tried, and the LLM usage. Sections owned by other parts of the bot
(`repairs`, `llm`, `storage`) are kept across rewrites.
"""

from __future__ import annotations

import functools
import json
import platform
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bot import __version__
from bot.manifest import MANIFEST, Manifest, StageRow
from bot.records import StageResult, built_precision
from bot.store import WORK, read_json, sha256_file, write_json

KEPT_SECTIONS = ("repairs", "repair_state", "localization", "llm", "storage", "agent", "reverted",
                 "repairs_unavailable")


def tool_versions(backend_versions: dict[str, str]) -> dict[str, str]:
    """Read from the installed packages' metadata, not by importing them (torch alone takes seconds,
    and every stage key hashes these: a fully cached run must not pay for them)."""
    return {**_library_versions(), **backend_versions}


@functools.lru_cache(maxsize=1)
def _library_versions() -> dict[str, str]:
    """Once per process: each lookup parses a package's METADATA, and every pipeline (the repair loop
    makes several) asks. Installed packages do not change under a running deploy."""
    return {"aipc-bot": __version__, "python": platform.python_version(), "torch": version("torch"),
            "onnx": version("onnx"), "onnxslim": version("onnxslim"), "numpy": version("numpy")}


def artifact_table(out_dir: Path, stages: list[str]) -> dict[str, dict[str, Any]]:
    table = {}
    for stage in stages:
        folder = out_dir / stage
        if not folder.is_dir():
            continue
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                table[str(p.relative_to(out_dir))] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    return table


def write(out_dir: Path, *, spec, backend: str, versions: dict[str, str], results: list[StageResult],
          artifacts: dict[str, dict[str, Any]], workflow: list[str], started: float, status: str) -> dict[str, Any]:
    """`artifacts` is the runner's table (each stage's files hashed once, when published)."""
    path = out_dir / MANIFEST
    old = read_json(path) or {}
    done = deployed_settings(spec, results, backend)
    kept = {k: old[k] for k in KEPT_SECTIONS if k in old}
    manifest = Manifest(
        model=spec.name,
        status=status,
        # what the files beside this manifest are: the deployed precision, not only the asked-for one
        target={**spec.target.model_dump(), "precision": done["precision"]},
        requested={"target": spec.target.model_dump(), "export": spec.export.model_dump(),
                   "repairs": list(spec.repairs)},
        deployed=done,
        backend=backend,
        definition=spec.model_dump(mode="json"),
        versions=versions,
        workflow=workflow,
        started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        # wall time of this run (the deploy rewrites it with the whole run's, repairs included)
        seconds_total=round(time.time() - started, 3),
        seconds_in_stages=round(sum(r.seconds for r in results if not r.cached), 3),
        stages=[StageRow(**r.to_dict(), cached=r.cached) for r in results],
        artifacts=artifacts,
        **kept,
    ).dump()
    write_json(path, manifest)
    gitignore = out_dir / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(f"{WORK}/\n")
    return manifest


def deployed_settings(spec, results: list[StageResult], backend: str) -> dict[str, Any]:
    """The settings the stage folders were actually produced with, read from the stages' own
    metrics (a repair may have changed the precision or the exporter); the definition's value where
    a stage has not run."""
    by = {r.stage: r for r in results}
    e = by["export"].metrics if "export" in by else {}
    return {"precision": built_precision(by.get("quantize"), spec.target.precision), "exporter": e.get("exporter", spec.export.exporter),
            "opset": e.get("opset", spec.export.opset), "soc": spec.target.soc, "backend": backend,
            "stages": [r.stage for r in results], "passed": bool(results) and all(r.passed for r in results)}


def update_section(out_dir: Path, section: str, value: Any) -> None:
    """Set one section; the file is rewritten only when the section's JSON changes (a cached re-run
    sets most sections to what they already are, and each rewrite re-encodes the whole manifest)."""

    path = out_dir / MANIFEST
    m = read_json(path) or {}
    if section in m and m[section] == json.loads(json.dumps(value, default=str)):
        return
    m[section] = value
    write_json(path, m)
