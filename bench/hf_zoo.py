"""Hugging Face transformers models through the bot, from the definitions in bench/hf/.

    python bench/hf_zoo.py [--only llama,bert_tokcls] [--work /tmp/hf-zoo] [--jsonl docs/hf-zoo-results.jsonl]

Environment: the bot with torch==2.13.0 and bench/requirements-hf.txt (the [hf] extra); no network
(HF_HUB_OFFLINE=1). Per definition: a copy in the work folder, the decoders trained there for a few
seconds (bench/hf_train.py; their prompts are the rule's), then `bot.deploy.deploy` on the default
backend (the simulated HTP). Decoders are checked by the packaged decode loop against transformers'
own greedy `generate`; `llama_random` is the Llama definition with its random weights, to show what
near-tied logits do to greedy agreement (the first divergence's reference top-1/top-2 gap is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HF = ROOT / "bench" / "hf"
sys.path.insert(0, str(ROOT))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("AIPC_FORGE", "off")

# name → (definition folder, train it, precision if not the definition's)
RUNS = {"llama": ("llama", True, None), "qwen2": ("qwen2", True, None), "llama_random": ("llama", False, None),
        "llama_w8a16": ("llama", True, "w8a16"), "bert_tokcls": ("bert_tokcls", False, None),
        "vit_cls": ("vit_cls", False, None), "whisper": ("whisper", True, None), "clip": ("clip", False, None),
        "llama_32k": ("llama_32k", False, None), "llama_prefill": ("llama_prefill", True, None)}


def prepare(name: str, work: Path) -> tuple[Path, dict]:
    import yaml

    from bench.hf_train import rule_prompts, train_causal_lm

    src, train, precision = RUNS[name]
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(HF / src, folder)
    raw = yaml.safe_load((folder / "aipc.yaml").read_text())
    t, info = raw["transformers"], {}
    if t["model_class"].endswith("ForCausalLM") and t.get("weights"):  # a definition meant to be trained
        t["prompts"] = rule_prompts(8, t["config"]["vocab_size"], seed=11)
        if train:
            t0 = time.perf_counter()
            info["train_accuracy"] = round(train_causal_lm(t["model_class"], t["config"], folder / "weights.pt",
                                                           steps=200, length=t["max_length"]), 4)
            info["train_seconds"] = round(time.perf_counter() - t0, 1)
        else:
            t.pop("weights")
    elif t["model_class"] == "WhisperForConditionalGeneration":
        from bench.hf_train import train_whisper

        sys.path.insert(0, str(folder))
        import features  # the definition's own front end: espeak-ng speech → log-mel

        t0 = time.perf_counter()
        feats = features.log_mel(len(features.WORDS))
        info["train_accuracy"] = round(train_whisper(t["config"], feats, features.WORDS, folder / "weights.pt"), 4)
        info["train_seconds"] = round(time.perf_counter() - t0, 1)
        t.update(weights="weights.pt", sample_count=len(features.WORDS))
    if precision:
        raw.setdefault("target", {})["precision"] = precision
    (folder / "aipc.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return folder, info


def first_divergence_gap(folder: Path, dec: dict) -> list[dict]:
    """For each sequence that differs: where, and the reference logits' top-1 − top-2 gap there."""
    import torch

    from bot.adapters import transformers as A
    from bot.spec import load_spec

    spec, _ = load_spec(folder)
    m, out = A.reference_model(folder), []
    for prompt, got, ref in zip(spec.decode.prompts, dec["generated"], dec["reference"]):
        k = next((i for i, (a, b) in enumerate(zip(got, ref)) if a != b), None)
        if k is None:
            continue
        with torch.no_grad():
            logits = m(torch.tensor([prompt + ref[:k]])).logits[0, -1]
        top = logits.topk(2).values
        out.append({"prompt": prompt, "token": k, "gap": round(float(top[0] - top[1]), 5),
                    "logit_scale": round(float(logits.std()), 3)})
    return out


def run(name: str, work: Path) -> dict:
    from bot.deploy import deploy

    folder, info = prepare(name, work)
    t0 = time.perf_counter()
    outcome = deploy(folder, out_dir=work / f"{name}-out")
    row = {"model": name, "class": _class(folder), "passed": outcome.passed, **info,
           "bot_seconds": round(time.perf_counter() - t0, 1)}
    m = outcome.manifest
    if m.get("kind") == "multi":
        parts = m["parts"]
        row.update(precision="/".join(dict.fromkeys(p["precision"] for p in parts)),
                   repairs=sum(p["repairs"] for p in parts),
                   cosine={f"{p['graph']}.{k}": v["cosine"] for p in parts
                           for k, v in (p.get("validate", {}).get("outputs") or {}).items()})
        chains = [e for e in m.get("e2e", []) if e["name"].startswith("chain")]
        if chains:
            ranking = next((c for c in chains[0]["checks"] if "ranking" in c["name"]), None)
            row.update(chain_cosine={c["name"].split()[0]: c["value"] for c in chains[0]["checks"]
                                     if "cosine" in c["name"]},
                       ranking=ranking and ranking["value"], ranking_detail=chains[0]["metrics"].get("ranking"))
        if m.get("e2e") and m["e2e"][0]["name"] == "decode":
            dec = m["e2e"][0]
            row.update({k: dec.get(k) for k in ("token_agreement", "sequences_equal", "sequences",
                                                "tokens_per_sequence", "seconds_per_token", "prefill_seconds")})
            if dec.get("token_agreement") is not None and dec["token_agreement"] < 1:
                row["divergences"] = first_divergence_gap(folder, dec)
        failed = [p for p in parts if p.get("failure")]
        if failed:
            row["failure"] = {"graph": failed[0]["graph"], **failed[0]["failure"]}
    else:
        val = next((r for r in outcome.results if r.stage == "validate"), None)
        row.update(precision=m.get("target", {}).get("precision") or m.get("precision"),
                   repairs=len(m.get("repairs") or []),
                   cosine={k: v.get("cosine") for k, v in ((val.metrics.get("outputs") if val else {}) or {}).items()},
                   latency_ms=val.metrics.get("latency_ms_median") if val else None)
        if outcome.failure:
            row["failure"] = {"stage": outcome.failure.stage, "message": outcome.failure.message[:300]}
    return row


def _class(folder: Path) -> str:
    import yaml

    return yaml.safe_load((folder / "aipc.yaml").read_text())["transformers"]["model_class"]


def markdown(rows: list[dict]) -> str:
    lines = ["| model | transformers class | precision | bot: pass | cosine (worst output) | token agreement with "
             "`generate` | sequences equal | s / token (HTP sim) | ranking unchanged | repairs | bot s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cos = min(r.get("cosine", {}).values(), default=None)
        agree = r.get("token_agreement")
        seqs = f"{r['sequences_equal']}/{r['sequences']}" if r.get("sequences") else "—"
        lines.append(f"| {r['model']} | {r['class']} | {r.get('precision', '—')} | "
                     f"{'**pass**' if r['passed'] else 'FAIL'} | {cos if cos is not None else '—'} | "
                     f"{f'{agree:.4f}' if agree is not None else '—'} | "
                     f"{seqs} | "
                     f"{r.get('seconds_per_token') or '—'} | {r.get('ranking') or '—'} | {r.get('repairs', 0)} | "
                     f"{r['bot_seconds']} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(RUNS))
    ap.add_argument("--work", type=Path, default=Path("/tmp/hf-zoo"))
    ap.add_argument("--jsonl", type=Path, default=None)
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in a.only.split(","):
        print(f"== {name}", flush=True)
        rows.append(run(name, a.work))
        print(json.dumps(rows[-1]), flush=True)
        if a.jsonl:
            a.jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
