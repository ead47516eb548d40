"""The checks over a deployment's parts together, run once every part is deployed (`bot.deploy`).

A definition with `graphs:` and/or `variants:` is deployed part by part (`bot.spec.expand`), each
part by the usual repair loop + pipeline into its own folder; then, over the parts:
- weight sharing across a graph's variants is tried (`share.attempt`) and recorded;
- `decode:` packages `runtime/decode_loop.py` (the decode loop on the compiled graphs, front end on
  the host) and runs it in a child process against the PyTorch greedy decode: token agreement and
  seconds per token;
- `chain:` runs the graphs in order on the target, outputs feeding later inputs by name, against
  the PyTorch reference end to end.
The results are handed back as plain records; the deployment's manifest, report and forge are the
deploy's, written once for one part or many. This package does not import the deploy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bot import samples as S
from bot import metrics as M
from bot.backends.base import Compiled
from bot.compose.share import attempt
from bot.model_code import call, flatten_outputs
from bot.model_code import load_callable
from bot.records import RunOutcome
from bot.spec.expand import Part
from bot.spec.schema import Spec

ASSETS = Path(__file__).parent / "assets"


def share_weights(spec: Spec, out: Path, parts: list[Part], outcomes: dict[str, RunOutcome],
                  say: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Per graph with several variants that all deployed: one shared context binary tried, the attempt
    recorded (which binary is deployed is said in `deployed`)."""
    sharing = {}
    for gname in dict.fromkeys(p.graph for p in parts if p.variant):
        vs = [p for p in parts if p.graph == gname and p.variant]
        if len(vs) > 1 and all(outcomes[p.rel].passed for p in vs):
            say(f"── weight sharing across {len(vs)} variants of {gname} (ep.share_ep_contexts=1)")
            rec = attempt({p.variant: out / p.rel for p in vs}, out / ".work" / f"shared-{gname}",
                          spec.target)
            rec["deployed"] = "one shared binary" if rec.get("usable") else "one binary per variant"
            sharing[gname] = rec
    return sharing


def end_to_end_checks(spec: Spec, folder: Path, out: Path, parts: list[Part], outcomes: dict[str, RunOutcome],
                      backend, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """The definition's `decode:` and `chain:` checks, once every part deployed (none otherwise)."""
    if not all(outcomes[p.rel].passed for p in parts):
        return []
    e2e = []
    if spec.decode:
        e2e.append(_decode_check(spec, folder, out, parts, say))
    if spec.chain:
        e2e += _chain_checks(spec, folder, out, parts, outcomes, backend, say)
    return e2e


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
