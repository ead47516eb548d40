#!/usr/bin/env python3
"""Greedy decoding on the compiled graphs (QNN context binaries on the HTP) with a static KV cache.

Usage: python decode_loop.py [--prompt 1,5,9 ...] [--input FILE.npy ...] [--expect reference.json]
                             [--out tokens.json] [--backend-path libQnnHtp.so]

Reads `decode.json` beside this file: the step graph (and the encoder and prefill graphs, if any) as EPContext
models with their `interface.json`, which inputs carry the token, position, mask and caches, and
which outputs carry the logits and this position's new cache entries. Each step the host writes
the new entries into the caches at `position` and clears the mask there, so every shape is static.
A speech model's front end (e.g. log-mel) runs here on the host (`frontend`, numpy only), never in
the deployed graph. CPU fallback is disabled: the graphs run on the HTP or not at all.
"""

import argparse
import importlib.util
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))


def _session(part, backend_path):
    import onnxruntime_qnn

    iface = json.load(open(os.path.join(HERE, part["interface"])))
    try:
        ort.register_execution_provider_library("QNNExecutionProvider", onnxruntime_qnn.get_library_path())
    except Exception as e:  # registered already in this process
        if "already" not in str(e).lower():
            raise
    devs = [d for d in ort.get_ep_devices() if d.ep_name == "QNNExecutionProvider"]
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.add_provider_for_devices(devs, {"backend_path": backend_path or onnxruntime_qnn.get_qnn_htp_path(),
                                       "htp_arch": str(iface["target"]["htp_arch"]),
                                       "soc_model": str(iface["target"]["soc_model"])})
    so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return ort.InferenceSession(os.path.join(HERE, part["entry"]), so), iface


def _frontend(ref):
    file, _, func = ref.partition(":")
    spec = importlib.util.spec_from_file_location("aipc_frontend", os.path.join(HERE, file))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, func)


def _prefill(prefill, cfg, prompt, caches, mask):
    """The prompt in one run of the prefill graph (padded at the end to its static length): write
    its first len(prompt) cache entries, clear the mask there, return the next token's logits."""
    sess, piface = prefill
    (inp,) = piface["inputs"]
    ids = np.zeros(inp["shape"], dtype=inp["dtype"])
    ids.reshape(-1)[: len(prompt)] = prompt
    t0 = time.perf_counter()
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {inp["name"]: ids})))
    seconds = time.perf_counter() - t0
    n = len(prompt)
    for c in cfg["cache"]:
        idx = [slice(None)] * caches[c["input"]].ndim
        idx[c["axis"]] = slice(0, n)
        caches[c["input"]][tuple(idx)] = np.take(out[c["output"]], np.arange(n), axis=c["axis"])
    if mask is not None:
        mask.reshape(-1)[:n] = 0
    logits = out[cfg["logits_output"]]
    return logits.reshape(ids.size, -1)[n - 1], seconds


def decode(step, iface, cfg, prompt, extra, max_new, prefill=None):
    """Feed the prompt (one prefill run, or one token at a time), then argmax → next token, until
    max_new or eos. Returns the new tokens, the seconds of each step and of the prefill."""
    shapes = {i["name"]: (i["shape"], i["dtype"]) for i in iface["inputs"]}
    caches = {c["input"]: np.zeros(shapes[c["input"]][0], dtype=shapes[c["input"]][1]) for c in cfg["cache"]}
    length = shapes[cfg["cache"][0]["input"]][0][cfg["cache"][0]["axis"]]
    mask = None
    if cfg.get("mask_input"):
        mask = np.full(shapes[cfg["mask_input"]][0], cfg["mask_value"], dtype=shapes[cfg["mask_input"]][1])
    names = [o.name for o in step.get_outputs()]
    toks, generated, seconds, start, prefill_s = list(prompt), [], [], 0, 0.0
    if prefill is not None:
        logits, prefill_s = _prefill(prefill, cfg, prompt, caches, mask)
        nxt = int(np.argmax(logits))
        toks.append(nxt)
        generated.append(nxt)
        start = len(prompt)
        if nxt == cfg.get("eos") or len(generated) >= max_new:
            return generated, seconds, prefill_s
    for pos in range(start, min(len(prompt) + max_new - 1, length)):
        feed = {cfg["token_input"]: np.full(shapes[cfg["token_input"]][0], toks[pos], shapes[cfg["token_input"]][1])}
        if cfg.get("position_input"):
            feed[cfg["position_input"]] = np.full(shapes[cfg["position_input"]][0], pos, shapes[cfg["position_input"]][1])
        if mask is not None:
            feed[cfg["mask_input"]] = mask
        feed.update(caches)
        feed.update({k: v.astype(shapes[k][1]) for k, v in extra.items() if k in shapes})
        t0 = time.perf_counter()
        out = dict(zip(names, step.run(None, feed)))
        seconds.append(time.perf_counter() - t0)
        for c in cfg["cache"]:
            idx = [slice(None)] * caches[c["input"]].ndim
            idx[c["axis"]] = pos
            caches[c["input"]][tuple(idx)] = np.take(out[c["output"]], 0, axis=c["axis"])
        if mask is not None:
            mask.reshape(-1)[pos] = 0
        if pos + 1 >= len(toks):
            nxt = int(np.argmax(out[cfg["logits_output"]].reshape(-1)))
            toks.append(nxt)
            generated.append(nxt)
            if nxt == cfg.get("eos") or len(generated) >= max_new:
                break
    return generated, seconds, prefill_s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt", action="append", default=[], help="comma-separated token ids")
    ap.add_argument("--input", action="append", default=[], help="raw encoder/front-end input (.npy)")
    ap.add_argument("--expect", default=None, help="reference tokens (JSON) to compare with")
    ap.add_argument("--out", default=None)
    ap.add_argument("--backend-path", default=None)
    a = ap.parse_args(argv)
    cfg = json.load(open(os.path.join(HERE, "decode.json")))
    prompts = [[int(t) for t in p.split(",")] for p in a.prompt] or cfg["prompts"]
    inputs = a.input or [os.path.join(HERE, s) for s in cfg.get("samples", [])] or [None]
    t0 = time.perf_counter()
    step, step_iface = _session(cfg["step"], a.backend_path)
    encoder = _session(cfg["encoder"], a.backend_path) if cfg.get("encoder") else None
    prefill = _session(cfg["prefill"], a.backend_path) if cfg.get("prefill") else None
    frontend = _frontend(cfg["frontend"]) if cfg.get("frontend") else None
    load_s = time.perf_counter() - t0
    runs = []
    for sample in inputs:
        extra, enc_s = {}, 0.0
        if sample is not None and encoder is not None:
            raw = np.load(sample)
            feeds = frontend(raw) if frontend else {encoder[1]["inputs"][0]["name"]: raw}
            t1 = time.perf_counter()
            vals = encoder[0].run(None, {k: np.asarray(v, dtype=np.float32) for k, v in feeds.items()})
            enc_s = time.perf_counter() - t1
            extra = dict(zip([o.name for o in encoder[0].get_outputs()], vals))
        for prompt in prompts:
            tokens, secs, pre_s = decode(step, step_iface, cfg, prompt, extra, cfg["max_new_tokens"], prefill)
            runs.append({"sample": os.path.basename(sample) if sample else None, "prompt": prompt, "tokens": tokens,
                         "encoder_seconds": round(enc_s, 4), "steps": len(secs), "prefill_seconds": round(pre_s, 4),
                         "seconds_per_token": round(sum(secs) / max(1, len(secs)), 5)})
    report = {"runs": runs, "load_seconds": round(load_s, 3)}
    code = 0
    if a.expect:
        ref = json.load(open(a.expect))["runs"]
        same = sum(min(len(r["tokens"]), len(e["tokens"])) for r, e in zip(runs, ref))
        agree = sum(x == y for r, e in zip(runs, ref) for x, y in zip(r["tokens"], e["tokens"]))
        total = sum(max(len(r["tokens"]), len(e["tokens"])) for r, e in zip(runs, ref))
        report["token_agreement"] = agree / total if total else 0.0
        report["sequences_equal"] = sum(r["tokens"] == e["tokens"] for r, e in zip(runs, ref))
        report["sequences"] = len(ref)
        report["compared_tokens"] = same
        code = 0 if report["token_agreement"] >= cfg.get("min_token_agreement", 1.0) and len(runs) == len(ref) else 1
    text = json.dumps(report, indent=2)
    if a.out:
        open(a.out, "w").write(text + "\n")
    print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
