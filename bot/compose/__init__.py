"""Several graphs, several static sizes, decoding: composed above the single-graph pipeline.

A definition with `graphs:` and/or `variants:` is expanded into single-graph `Spec`s with static
shapes (`expand`), each deployed by the usual repair loop + pipeline into its own folder
(`<out>/<graph>/<variant>/`, or `<out>/<graph>/` / `<out>/<variant>/` when there is one of either).
Then, above the parts:
- weight sharing across a graph's variants is tried (`share.attempt`) and recorded;
- `decode:` packages `runtime/decode_loop.py` (the decode loop on the compiled graphs, front end on
  the host) and runs it in a child process against the PyTorch greedy decode: token agreement and
  seconds per token;
- `chain:` runs the graphs in order on the target, outputs feeding later inputs by name, against
  the PyTorch reference end to end;
- one top-level `manifest.json` lists the parts and the end-to-end checks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bot import samples as S
from bot import metrics as M
from bot.backends.base import Compiled
from bot.compose.share import attempt
from bot.errors import BadInput
from bot.manifest import MANIFEST, Manifest
from bot.model_code import call, flatten_outputs
from bot.model_code import call
from bot.model_code import load_callable
from bot.records import Check, Failure, FailureKind, RunOutcome, StageResult
from bot.spec.schema import GraphSpec, Spec
from bot.store import sha256_file, write_json

ASSETS = Path(__file__).parent / "assets"
TOP_ONLY = {"graphs", "variants", "decode", "chain"}


@dataclass
class Part:
    graph: str
    variant: str | None
    spec: Spec
    rel: str


def expand(spec: Spec) -> list[Part]:
    """One single-graph, static-shape Spec per (graph, variant)."""
    base = spec.model_dump(exclude=TOP_ONLY)
    graphs: list[tuple[str | None, GraphSpec | Spec, str]] = (
        [(g.name, g, f"graphs[{i}]") for i, g in enumerate(spec.graphs)] if spec.graphs else [(None, spec, "")])
    parts = []
    for gname, g, where in graphs:
        gd = g.model_dump()
        one = dict(base, entry=gd["entry"], onnx=gd["onnx"], inputs=gd["inputs"], outputs=gd["outputs"])
        for key in ("calibration", "validation", "export", "quantization"):
            if gd.get(key) is not None:
                one[key] = gd[key]
        if isinstance(g, GraphSpec):
            if g.precision:
                one["target"] = dict(base["target"], precision=g.precision)
            one["repairs"] = list(dict.fromkeys(base["repairs"] + g.repairs))
        variants = g.variants or [None]
        for j, v in enumerate(variants):
            p = dict(one, inputs=[dict(i) for i in one["inputs"]])
            if v is not None:
                known = {i["name"] for i in p["inputs"]}
                for name, shape in v.shapes.items():
                    if name not in known:
                        raise BadInput(f"{where + '.' if where else ''}variants[{j}].shapes.{name}: no input of that "
                                       f"name (inputs: {', '.join(sorted(known))})", where="aipc.yaml")
                for i in p["inputs"]:
                    i["shape"] = v.shapes.get(i["name"], i["shape"])
                if v.calibration is not None:
                    p["calibration"] = v.calibration.model_dump()
            label = ".".join(x for x in (gname, v.name if v else None) if x).lower()
            p["name"] = f"{spec.name}.{label}"
            rel = "/".join(x for x in (gname, v.name if v else None) if x)
            parts.append(Part(gname or spec.name, v.name if v else None, Spec.model_validate(p), rel))
    return parts


def deploy_multi(spec: Spec, folder: Path, out: Path, backend, *, deploy_part: Callable[..., Any],
                 repair: bool = True, events=None, say: Callable[[str], None] = lambda m: None) -> RunOutcome:
    """Every part through the pipeline, then the end-to-end checks and the top manifest; no forge
    (the caller writes the report and publishes, as for a single graph). `deploy_part` is
    `bot.deploy.deploy_one`, handed in so this module does not import its caller."""
    t0, out = time.time(), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts, outcomes, rows, results = expand(spec), {}, [], []
    for part in parts:
        say(f"── {part.rel}: {', '.join(f'{i.name}{i.shape}' for i in part.spec.inputs)}")
        pout = out / part.rel
        t1 = time.perf_counter()
        outcome = deploy_part(part.spec, folder, pout, backend, repair=repair, events=events, say=say)
        outcomes[part.rel] = outcome
        rows.append(_part_row(part, outcome, pout, out, time.perf_counter() - t1))
        results.append(StageResult(part.rel, outcome.passed, seconds=round(time.perf_counter() - t1, 3),
                                   metrics=rows[-1].get("validate", {}), failure=outcome.failure))
    top: dict[str, Any] = {"model": spec.name, "kind": "multi", "backend": backend.name,
                           "target": spec.target.model_dump(mode="json"),
                           "versions": next((o.manifest["versions"] for o in outcomes.values()
                                             if o.manifest.get("versions")), {}),
                           "definition": spec.model_dump(mode="json"), "parts": rows}
    all_parts = all(outcomes[p.rel].passed for p in parts)
    sharing = {}
    for gname in dict.fromkeys(p.graph for p in parts if p.variant):
        vs = [p for p in parts if p.graph == gname and p.variant]
        if len(vs) > 1 and all(outcomes[p.rel].passed for p in vs):
            say(f"── weight sharing across {len(vs)} variants of {gname} (ep.share_ep_contexts=1)")
            rec = attempt({p.variant: out / p.rel for p in vs}, out / ".work" / f"shared-{gname}",
                          spec.target)
            rec["deployed"] = "one shared binary" if rec.get("usable") else "one binary per variant"
            sharing[gname] = rec
    top["weight_sharing"] = sharing
    e2e = []
    if all_parts and spec.decode:
        e2e.append(_decode_check(spec, folder, out, parts, say))
    if all_parts and spec.chain:
        e2e += _chain_checks(spec, folder, out, parts, outcomes, backend, say)
    for e in e2e:
        results.append(StageResult(f"e2e:{e['name']}", e["passed"], seconds=e.get("seconds", 0.0),
                                   checks=[Check(**c) for c in e["checks"]]))
    top["e2e"] = e2e
    failure = next((r.failure for r in results if r.failure), None)
    if failure is None and not all(r.passed for r in results):
        bad = next(r for r in results if not r.passed)
        failure = Failure(bad.stage, FailureKind.ACCURACY, f"end-to-end check {bad.stage} failed",
                          details={"checks": [c.__dict__ for c in bad.checks]})
    top["status"] = "deployed" if failure is None else "failed"
    top["seconds_total"] = round(time.time() - t0, 3)
    top["artifacts"] = {str(p.relative_to(out)): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                        for p in sorted((out / "runtime").rglob("*")) if p.is_file()} if (out / "runtime").exists() else {}
    top = Manifest.parse(top).dump()  # the one manifest shape (`bot.manifest`): a part row off its type fails here
    write_json(out / MANIFEST, top)
    return RunOutcome(results, failure, out, top)


def _part_row(part: Part, outcome, pout: Path, out: Path, seconds: float) -> dict:
    row: dict[str, Any] = {"graph": part.graph, "variant": part.variant, "dir": part.rel,
                           "inputs": {i.name: i.shape for i in part.spec.inputs},
                           "status": outcome.manifest.get("status"), "passed": outcome.passed,
                           "seconds": round(seconds, 3),
                           "precision": part.spec.target.precision,
                           "repairs": len(outcome.manifest.get("repairs") or []),
                           # the records themselves (reason, before/after, diff): the report shows them
                           "repair_records": outcome.manifest.get("repairs") or [],
                           "stage_seconds": {r.stage: round(r.seconds, 3) for r in outcome.results}}
    if outcome.failure:
        row["failure"] = {"stage": outcome.failure.stage, "kind": outcome.failure.kind.value,
                          "message": outcome.failure.message[:300],
                          "nodes": [f"{n.op} {n.name}: {n.reason}"[:200] for n in outcome.failure.nodes][:10]}
    comp, val = outcome.result("compile"), outcome.result("validate")
    if comp and comp.passed:
        bins = sorted((pout / "package").glob("*.bin")) or sorted((pout / "compile").glob("*.bin"))
        row["binaries"] = {str(b.relative_to(out)): {"bytes": b.stat().st_size, "sha256": sha256_file(b)} for b in bins}
        row["prepare_seconds"] = comp.metrics.get("prepare_seconds")
    if val:
        row["validate"] = {"passed": val.passed, "latency_ms_median": val.metrics.get("latency_ms_median"),
                           "outputs": val.metrics.get("outputs")}
    return row


def _ref_fn(folder: Path, ref: str, field: str):
    return load_callable(folder, ref, field)


def _decode_check(spec: Spec, folder: Path, out: Path, parts: list[Part], say) -> dict:
    """Package runtime/decode_loop.py, run it in a child process, compare with PyTorch greedy."""

    d, t0 = spec.decode, time.perf_counter()
    rt = out / "runtime"
    shutil.rmtree(rt, ignore_errors=True)
    rt.mkdir(parents=True)
    shutil.copyfile(ASSETS / "decode_loop.py", rt / "decode_loop.py")

    def loc(graph: str) -> dict:
        p = next(p for p in parts if p.graph == graph)
        pkg = Path("..") / p.rel / "package"
        entry = json.loads((out / p.rel / "package" / "interface.json").read_text())["entry"]
        return {"entry": str(pkg / entry), "interface": str(pkg / "interface.json")}

    step = next(p for p in parts if p.graph == d.step)
    length = next(i.shape for i in step.spec.inputs if i.name == d.cache[0].input)[d.cache[0].axis]
    max_new = d.max_new_tokens or length - max(len(p) for p in d.prompts) + 1
    cfg = {"step": loc(d.step), "encoder": loc(d.encoder) if d.encoder else None,
           "prefill": loc(d.prefill) if d.prefill else None,
           **d.model_dump(include={"token_input", "position_input", "mask_input", "mask_value", "logits_output",
                                   "eos", "prompts", "min_token_agreement"}),
           "cache": [c.model_dump() for c in d.cache], "max_new_tokens": max_new, "samples": []}
    raws = [None]
    if d.samples:
        raws = list(call(folder, lambda: list(_ref_fn(folder, d.samples, "decode.samples")(d.sample_count)),
                         what=f"the sample generator {d.samples}"))
        (rt / "samples").mkdir()
        for k, r in enumerate(raws):
            np.save(rt / "samples" / f"{k}.npy", np.asarray(r))
            cfg["samples"].append(f"samples/{k}.npy")
    frontend = None
    if d.frontend:
        file, _, func = d.frontend.partition(":")
        shutil.copyfile(folder / file, rt / Path(file).name)
        cfg["frontend"] = f"{Path(file).name}:{func}"
        frontend = _ref_fn(folder, d.frontend, "decode.frontend")
    (rt / "decode.json").write_text(json.dumps(cfg, indent=2) + "\n")
    # the PyTorch reference: the model's own greedy decode (full sequence, no cache), same inputs
    ref_fn, ref_runs = _ref_fn(folder, d.reference, "decode.reference"), []
    for k, raw in enumerate(raws):
        enc_in = None
        if raw is not None:
            enc_in = frontend(np.asarray(raw)) if frontend else {"input": np.asarray(raw)}
        for prompt in d.prompts:
            toks = call(folder, lambda: ref_fn(list(prompt), max_new, enc_in), what=f"the reference {d.reference}")
            ref_runs.append({"sample": f"{k}.npy" if raw is not None else None, "prompt": prompt,
                             "tokens": [int(t) for t in toks]})
    (rt / "reference.json").write_text(json.dumps({"runs": ref_runs}, indent=2) + "\n")
    say(f"── decode loop on the HTP: {len(ref_runs)} sequence(s) × {max_new} token(s)")
    proc = subprocess.run([sys.executable, str(rt / "decode_loop.py"), "--expect", str(rt / "reference.json"),
                           "--out", str(rt / "tokens.json")], capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    got = json.loads((rt / "tokens.json").read_text()) if (rt / "tokens.json").exists() else {}
    agree = got.get("token_agreement")
    runs = got.get("runs", [])
    spt = [r["seconds_per_token"] for r in runs]
    checks = [{"name": "decode_loop.py runs on the compiled graphs", "passed": bool(runs),
               "value": proc.returncode, "detail": "" if runs else proc.stderr[-1500:]},
              {"name": "token agreement with the PyTorch greedy decode", "passed": proc.returncode == 0 and bool(runs),
               "value": agree, "threshold": d.min_token_agreement}]
    return {"name": "decode", "passed": all(c["passed"] for c in checks), "checks": checks,
            "token_agreement": agree, "sequences_equal": got.get("sequences_equal"), "sequences": len(ref_runs),
            "tokens_per_sequence": max_new, "seconds_per_token": round(float(np.median(spt)), 5) if spt else None,
            "encoder_seconds": max((r["encoder_seconds"] for r in runs), default=None),
            "prefill_seconds": max((r.get("prefill_seconds", 0.0) for r in runs), default=None) if d.prefill else None,
            "session_load_seconds": got.get("load_seconds"),
            "generated": [r["tokens"] for r in runs], "reference": [r["tokens"] for r in ref_runs],
            "runtime": "runtime/decode_loop.py", "seconds": round(time.perf_counter() - t0, 3)}


def _ranking_check(ref: list[dict], got: list[dict], names: list[str]) -> dict:
    """Cosine similarities of every b (e.g. image) against every a (e.g. text) over the samples:
    each row's order of the a's must be the reference's (CLIP's retrieval answer)."""
    def sims(rows):
        a = np.concatenate([np.asarray(r[names[0]], np.float64).reshape(1, -1) for r in rows])
        b = np.concatenate([np.asarray(r[names[1]], np.float64).reshape(1, -1) for r in rows])
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        b /= np.linalg.norm(b, axis=1, keepdims=True)
        return b @ a.T

    s_ref, s_got = sims(ref), sims(got)
    same = [bool((np.argsort(-r) == np.argsort(-g)).all()) for r, g in zip(s_ref, s_got)]
    gaps = np.diff(np.sort(s_ref, axis=1), axis=1)
    return {"name": f"{names[1]}→{names[0]} similarity ranking unchanged", "passed": all(same),
            "value": f"{sum(same)}/{len(same)}", "threshold": "all rows",
            "detail": {"rows_equal": sum(same), "rows": len(same), "max_abs_similarity_change":
                       round(float(np.abs(s_ref - s_got).max()), 6),
                       "smallest_reference_gap": round(float(gaps.min()), 6) if gaps.size else None}}


def _chain_checks(spec: Spec, folder: Path, out: Path, parts: list[Part], outcomes: dict, backend, say) -> list[dict]:
    """Per variant of the chain's graphs: run the compiled graphs in order vs the PyTorch reference."""

    ch = spec.chain
    by_graph = {g: [p for p in parts if p.graph == g] for g in ch.graphs}
    n_var = max(len(v) for v in by_graph.values())
    ref_fn, checks_out = _ref_fn(folder, ch.reference, "chain.reference"), []
    for k in range(n_var):
        t0 = time.perf_counter()
        chosen = [by_graph[g][min(k, len(by_graph[g]) - 1)] for g in ch.graphs]
        label = "/".join(p.rel for p in chosen)
        produced: set[str] = set()
        external = []
        for p in chosen:
            external += [i for i in p.spec.inputs if i.name not in produced and i.name not in {e.name for e in external}]
            produced |= set(outcomes[p.rel].result("load").metrics.get("outputs", {}))
        feeds = S.random_inputs(external, ch.samples, spec.validation.seed + 11)
        got_all, ref_all = [], []
        for feed in feeds:
            vals = dict(feed)
            for p in chosen:
                o = outcomes[p.rel]
                c = o.result("compile")
                cdir = out / p.rel / "compile"
                compiled = Compiled(entry=cdir / c.artifacts["entry"], files=[], format=c.metrics.get("format", ""))
                res = backend.run(compiled, [{i.name: vals[i.name] for i in p.spec.inputs}], p.spec.target)
                vals.update(res.outputs[0])
            ref = call(folder, lambda: ref_fn(**{k2: v for k2, v in feed.items()}), what=f"the reference {ch.reference}")
            ref = dict(zip(ch.outputs, flatten_outputs(ref))) if not isinstance(ref, dict) else \
                {n: np.asarray(ref[n]) for n in ch.outputs}
            got_all.append({n: vals[n] for n in ch.outputs})
            ref_all.append(ref)
        th = ch.cosine_min if ch.cosine_min is not None else (0.95 if spec.quantized else 0.99)
        checks, metrics = [], {}
        for n in ch.outputs:  # the verdict is the worst sample's (a pooled figure can hide one), pooled beside it
            m = M.summary(M.concat([r[n] for r in ref_all]), M.concat([g[n] for g in got_all]))
            each = [M.cosine(r[n], g[n]) for r, g in zip(ref_all, got_all)]
            w = M.worst_index(each)
            metrics[n] = {**{a: (round(b, 6) if isinstance(b, float) else b) for a, b in m.items()},
                          "worst_sample_cosine": round(float(each[w]), 6), "worst_sample": w}
            checks.append({"name": f"{n} cosine end to end ({label}), worst of {len(each)} samples",
                           "passed": bool(each[w] >= th), "value": round(float(each[w]), 6), "threshold": th,
                           "detail": {"worst_sample": w, "pooled": round(float(m["cosine"]), 6)}})
        if ch.ranking and len(ch.outputs) >= 2:
            checks.append(_ranking_check([{n: r[n] for n in ch.outputs[:2]} for r in ref_all],
                                         [{n: g[n] for n in ch.outputs[:2]} for g in got_all], ch.outputs[:2]))
            metrics["ranking"] = checks[-1]["detail"]
        say(f"── chain {label}: " + ", ".join(f"{c['name'].split()[0]} {c['value']}" for c in checks))
        checks_out.append({"name": f"chain {label}", "passed": all(c["passed"] for c in checks), "checks": checks,
                           "metrics": metrics, "samples": ch.samples, "seconds": round(time.perf_counter() - t0, 3)})
    return checks_out
