"""Weight sharing across the static variants of one graph: ORT's `ep.share_ep_contexts=1`.

Compiling several variants with the option set makes the QNN EP write one context binary holding
every variant's graph (weights once). Whether that binary then *loads* depends on the backend: on
the simulated HTP of `onnxruntime-qnn` it does not (contextCreateFromBinary → NOT_SUPPORTED, or a
crash), so the bot deploys one binary per variant and records the attempt. Both steps run in child
processes, since a failing load can take the process down.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from bot import samples as S
from bot.backends.ort_qnn import _ort, session_options
from bot.spec.schema import TargetSpec


def attempt(variants: dict[str, Path], out_dir: Path, target: TargetSpec) -> dict:
    """`variants`: name → the variant's deployment folder. Returns what happened, for the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    job = {"variants": {n: str(p) for n, p in variants.items()}, "out": str(out_dir), "soc": target.soc}
    rec: dict = {"option": "ep.share_ep_contexts=1", "variants": list(variants)}
    gen = _child("generate", job)
    rec["generated"] = gen.get("ok", False)
    if not rec["generated"]:
        rec.update(usable=False, error=gen.get("error", "")[:600])
        return rec
    rec["binaries"] = gen["binaries"]
    rec["shared_bytes"] = sum(gen["binaries"].values())
    rec["separate_bytes"] = sum((p / "compile").joinpath(f).stat().st_size for p in variants.values()
                                for f in _bins(p / "compile"))
    load = _child("load", job)
    rec["loads"] = load.get("ok", False)
    rec["matches_separate"] = load.get("matches", False)
    rec["usable"] = bool(rec["loads"] and rec["matches_separate"])
    if not rec["usable"]:
        rec["error"] = load.get("error", "")[:600]
    return rec


def _bins(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.bin"))


def _child(mode: str, job: dict) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bot.compose.share", mode, json.dumps(job)],
                          capture_output=True, text=True, timeout=1800)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    err = [ln for ln in (proc.stderr or "").splitlines() if "LIBNATIVE" not in ln and ln.strip()]
    return {"ok": False, "error": f"child exited with {proc.returncode}"
            + (" (segmentation fault)" if proc.returncode == -11 else "") + ": " + " | ".join(err[-3:])}


def _main(mode: str, job: dict) -> dict:
    ort, target, out = _ort(), TargetSpec(soc=job["soc"]), Path(job["out"])
    names = list(job["variants"])
    if mode == "generate":
        for i, n in enumerate(names):
            so = session_options(target, context_file=out / f"{n}_ctx.onnx")
            so.add_session_config_entry("ep.share_ep_contexts", "1")
            if i == len(names) - 1:
                so.add_session_config_entry("ep.stop_share_ep_contexts", "1")
            ort.InferenceSession(str(Path(job["variants"][n]) / "quantize" / "model.onnx"), so)
        return {"ok": True, "binaries": {p.name: p.stat().st_size for p in sorted(out.glob("*.bin"))}}
    matches = True
    for n in names:
        so = session_options(target)
        so.add_session_config_entry("ep.share_ep_contexts", "1")
        sess = ort.InferenceSession(str(out / f"{n}_ctx.onnx"), so)
        part = Path(job["variants"][n])
        feed = S.load(part / "load" / "samples.npz")[0]
        want = S.load(part / "validate" / "outputs.npz")[0]
        got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
        matches &= all(np.allclose(got[k], v, atol=1e-4) for k, v in want.items())
    return {"ok": True, "matches": bool(matches)}


if __name__ == "__main__":
    try:
        print(json.dumps(_main(sys.argv[1], json.loads(sys.argv[2]))))
    except Exception as e:  # the error text is the finding
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
