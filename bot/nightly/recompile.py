"""Tonight's figures for one deployment: rebuild and re-validate it with the backend installed now.

The accepted deployment is only read. From its quantized ONNX (the quantize stage's artifact), the
compat probe, the compile stage and the validate stage run again through the same stage classes the
pipeline uses, writing into a scratch folder that is thrown away. What comes out is the figures
shape of `bot.nightly.figures`, plus whether the accepted artifacts still match their sha256.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from bot.manifest import Manifest
from bot.nightly.figures import empty, placement_of, validate_figures
from bot.records import StageFailed, StageResult
from bot.stage_options import parse_options
from bot.stages.base import StageContext
from bot.stages.compat import CompatStage
from bot.stages.compile import CompileStage
from bot.stages.validate import ValidateStage
from bot.store import read_json, sha256_file

#: what the rebuild starts from; each must have a passing result in the accepted deployment
INPUTS = ("load", "optimize", "quantize")


def integrity(dep: Path, manifest: Manifest) -> tuple[bool, str]:
    """Do the accepted artifacts still match the manifest? A changed binary is not tonight's toolchain,
    but it would make every other figure meaningless, so it is a failure of its own."""
    bad = []
    for rel, meta in manifest.artifacts.items():
        p = dep / rel
        if not p.exists():
            bad.append(f"missing {rel}")
        elif sha256_file(p) != meta.get("sha256"):
            bad.append(f"changed {rel}")
    return not bad, "; ".join(bad)


def recheck(spec, model_dir: Path, dep: Path, backend, *, say: Callable[[str], None] = lambda m: None) -> dict:
    """Figures for the deployment in `dep`, measured now. Never raises for a stage's failure: a
    toolchain that crashes is exactly what a nightly reports."""
    manifest = Manifest.read(dep) or Manifest()  # the deployment accepted on main, of any earlier version
    f = empty()
    f["versions"] = dict(backend.versions())
    ok, why = integrity(dep, manifest)
    f["integrity"] = ok
    if not ok:
        f["failures"]["integrity"] = why
    options = parse_options((manifest.repair_state or {}).get("options"), where="manifest.repair_state.options")
    ctx = StageContext(spec, model_dir, dep, backend, options=options, progress=say)
    for stage in INPUTS:
        data = read_json(dep / stage / "result.json")
        if not data or not data.get("passed"):
            f["stages"]["compile"] = False
            f["failures"]["compile"] = f"the accepted deployment has no passing {stage} result to rebuild from"
            return f
        ctx.results[stage], ctx.dirs[stage] = StageResult.from_dict(data), dep / stage
    accepted = {s.stage for s in manifest.stages or []}
    with tempfile.TemporaryDirectory(prefix="aipc-nightly-") as tmp:
        scratch = Path(tmp)
        if "compat" in accepted:
            _stage(f, "compat", ctx, scratch)
        if _stage(f, "compile", ctx, scratch):
            _stage(f, "validate", ctx, scratch)
    return f


def _stage(f: dict, name: str, ctx: StageContext, scratch: Path) -> bool:
    """Run one stage into `scratch/<name>`; record pass/fail, the error, and its figures."""

    stage = {"compat": CompatStage, "compile": CompileStage, "validate": ValidateStage}[name]()
    work = scratch / name
    work.mkdir(parents=True, exist_ok=True)
    metrics, checks = {}, []
    try:
        res = stage.run(ctx, work)
        passed, metrics, checks = res.passed, res.metrics, res.checks
        ctx.results[name], ctx.dirs[name] = res, work
        if not passed:
            f["failures"][name] = "; ".join(c.name for c in res.checks if not c.passed)
    except StageFailed as e:
        passed, metrics, checks = False, e.metrics, e.checks
        log = (e.failure.log or "").strip()
        f["failures"][name] = e.failure.message + (f"\n{log[-1500:]}" if log else "")
    except Exception as e:  # a crashing toolchain is a finding, not a reason to stop the night
        passed = False
        f["failures"][name] = f"{type(e).__name__}: {e}"[:500]
    f["stages"][name] = passed
    if name == "compat":
        f["placement"] = placement_of(metrics)
    elif name == "validate":
        f.update(validate_figures(metrics, [asdict(c) for c in checks]))
    return passed
