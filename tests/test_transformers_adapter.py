"""The transformers adapter (bot/adapters/transformers.py): a definition names a transformers class
and a small config; the bot lays out the graphs (a KV-cache step graph for a causal LM) itself.

The layout tests need no transformers; the others skip without it (it is the `[hf]` extra: about a
minute to install, so the suite's own set-up leaves it out; the tests.yml `pytest-hf` job installs it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.errors import BadInput
from bot.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
LLAMA = {"vocab_size": 32, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 32}


@pytest.fixture(autouse=True)
def _no_forge(monkeypatch):
    monkeypatch.setenv("AIPC_FORGE", "off")


def _write(folder: Path, section: dict, **top) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "aipc.yaml").write_text(yaml.safe_dump({"transformers": section, **top}))
    return folder


# -- layout: no transformers import ------------------------------------------------------------
def test_causal_lm_layout_comes_from_the_config(tmp_path):
    spec, _ = load_spec(_write(tmp_path / "m", {"model_class": "Qwen2ForCausalLM", "config": LLAMA,
                                                "max_length": 12, "prompts": [[1, 2, 3]]}))
    (step,) = spec.graphs
    shapes = {i.name: (i.shape, i.dtype) for i in step.inputs}
    # grouped-query attention: the cache holds the 2 kv heads, not the 4 query heads; head_dim 32/4
    assert shapes == {"token": ([1, 1], "int32"), "position": ([1, 1], "int32"), "mask": ([1, 12], "float32"),
                      "k_cache": ([2, 2, 12, 8], "float32"), "v_cache": ([2, 2, 12, 8], "float32")}
    assert step.entry == "transformers:step" and step.outputs == ["logits", "k_new", "v_new"]
    assert spec.decode.reference == "transformers:greedy" and spec.decode.max_new_tokens == 9
    assert spec.decode.mask_value == spec.transformers.mask_value


def test_encoder_layouts(tmp_path):
    bert, _ = load_spec(_write(tmp_path / "b", {"model_class": "BertForTokenClassification",
                                                "config": {"vocab_size": 50}, "sequence_length": 10}))
    assert [(i.name, i.shape, i.dtype, i.range) for i in bert.inputs] == [("input_ids", [1, 10], "int32", (0, 49))]
    vit, _ = load_spec(_write(tmp_path / "v", {"model_class": "ViTForImageClassification",
                                               "config": {"image_size": 32, "num_channels": 3}}))
    assert vit.inputs[0].shape == [1, 3, 32, 32] and vit.entry == "transformers:model"


def test_layout_errors_name_the_field(tmp_path):
    with pytest.raises(BadInput, match=r"transformers\.config\.vocab_size: required"):
        load_spec(_write(tmp_path / "a", {"model_class": "LlamaForCausalLM",
                                          "config": {"hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1}}))
    with pytest.raises(BadInput, match=r"transformers\.model_class: 'LlamaModel' is not a class the adapter lays out"):
        load_spec(_write(tmp_path / "b", {"model_class": "LlamaModel", "config": LLAMA}))
    with pytest.raises(BadInput, match=r"transformers\.prompts: a prompt of 12 tokens does not fit max_length 8"):
        load_spec(_write(tmp_path / "c", {"model_class": "LlamaForCausalLM", "config": LLAMA, "max_length": 8,
                                          "prompts": [list(range(12))]}))
    with pytest.raises(BadInput, match=r"transformers\.weights: file 'w\.pt' not found"):
        load_spec(_write(tmp_path / "d", {"model_class": "LlamaForCausalLM", "config": LLAMA, "weights": "w.pt"}))


def test_loading_a_definition_does_not_import_transformers(tmp_path):
    """`aipc plan` and a cached deploy read the definition; they must not pay transformers' import."""
    folder = _write(tmp_path / "m", {"model_class": "LlamaForCausalLM", "config": LLAMA})
    code = (f"import sys; from bot.spec import load_spec; load_spec({str(folder)!r}); "
            "assert 'transformers' not in sys.modules, 'imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-600:]


# -- the step graph in PyTorch against transformers' own generate --------------------------------
@pytest.mark.parametrize("model_class", ["LlamaForCausalLM", "Qwen2ForCausalLM"])
def test_step_graph_decodes_like_generate(tmp_path, model_class):
    """Random weights, fp32 on the CPU: the static-cache step (the model's own layers, our cache)
    must reproduce generate's greedy tokens exactly; a wrong RoPE position, mask or GQA layout would not."""
    pytest.importorskip("transformers")
    import numpy as np
    import torch

    from bot.adapters import transformers as A

    T = 12
    folder = _write(tmp_path / "m", {"model_class": model_class, "config": dict(LLAMA, initializer_range=0.3),
                                     "max_length": T, "prompts": [[1, 5, 9]]})
    step, (layers, kv, dh) = A.step(folder), (2, 2, 8)
    for prompt in ([1, 5, 9], [3, 30, 2, 7]):
        ref = A.greedy(folder, prompt, T - len(prompt))
        kc, vc = np.zeros((layers, kv, T, dh), np.float32), np.zeros((layers, kv, T, dh), np.float32)
        mask, toks = np.full((1, T), -1000.0, np.float32), list(prompt)
        with torch.no_grad():
            for pos in range(T - 1):
                logits, k, v = step(torch.tensor([[toks[pos]]], dtype=torch.int32),
                                    torch.tensor([[pos]], dtype=torch.int32), torch.from_numpy(mask),
                                    torch.from_numpy(kc), torch.from_numpy(vc))
                kc[:, :, pos], vc[:, :, pos], mask[0, pos] = k[:, :, 0].numpy(), v[:, :, 0].numpy(), 0.0
                if pos + 1 >= len(toks):
                    toks.append(int(logits[0].argmax()))
        assert toks[len(prompt):] == ref and len(ref) == T - len(prompt)
        assert len(set(ref)) > 2  # not a degenerate repeat


# -- on the HTP: a trained tiny Llama through the whole pipeline ----------------------------------
@pytest.fixture(scope="module")
def trained_llama(tmp_path_factory) -> tuple[Path, float]:
    """The tiny Llama trained once for the module's HTP tests (weights file, training accuracy)."""
    pytest.importorskip("transformers")
    sys.path.insert(0, str(ROOT))
    from bench.hf_train import train_causal_lm

    weights = tmp_path_factory.mktemp("llama") / "weights.pt"
    return weights, train_causal_lm("LlamaForCausalLM", LLAMA, weights, steps=120, seed=0)


def _llama_folder(tmp_path: Path, trained: tuple[Path, float]) -> Path:
    folder = tmp_path / "llama"
    folder.mkdir()
    shutil.copyfile(trained[0], folder / "weights.pt")
    return folder


@pytest.mark.htp
def test_trained_llama_decodes_on_htp_like_generate(tmp_path, trained_llama):
    from bench.hf_train import rule_prompts
    from bot.deploy import deploy

    folder = _llama_folder(tmp_path, trained_llama)
    assert trained_llama[1] > 0.9  # trained: its greedy decode is well defined (no near-ties)
    _write(folder, {"model_class": "LlamaForCausalLM", "config": LLAMA, "weights": "weights.pt", "max_length": 12,
                    "prompts": rule_prompts(3, 32, seed=5)}, target={"precision": "fp16"})
    out = deploy(folder, out_dir=tmp_path / "out")
    assert out.passed, out.manifest.get("parts")
    dec = json.loads((tmp_path / "out" / "manifest.json").read_text())["e2e"][0]
    assert dec["token_agreement"] == 1.0 and dec["sequences_equal"] == dec["sequences"] == 3
    assert all(len(t) == 9 for t in dec["reference"]) and dec["generated"] == dec["reference"]
    assert dec["seconds_per_token"] > 0


WHISPER = {"vocab_size": 40, "d_model": 32, "encoder_layers": 1, "decoder_layers": 2, "encoder_attention_heads": 2,
           "decoder_attention_heads": 2, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "num_mel_bins": 8,
           "max_source_positions": 10, "max_target_positions": 16, "decoder_start_token_id": 1, "pad_token_id": 0,
           "bos_token_id": 1, "eos_token_id": 39, "init_std": 0.3}
FEATURES = '''
import numpy as np
def feats(n):
    rng = np.random.default_rng(3)
    return [rng.normal(0, 1, (1, 8, 20)).astype(np.float32) for _ in range(n)]
'''


def _whisper(folder: Path, **extra) -> Path:
    _write(folder, {"model_class": "WhisperForConditionalGeneration", "config": WHISPER, "features": "f.py:feats",
                    "max_length": 10, **extra})
    (folder / "f.py").write_text(FEATURES)
    return folder


def test_whisper_layout_encoder_and_decoder_step(tmp_path):
    spec, _ = load_spec(_whisper(tmp_path / "w"))
    enc, dec = spec.graphs
    assert [(i.name, i.shape) for i in enc.inputs] == [("input_features", [1, 8, 20])]
    assert {i.name: i.shape for i in dec.inputs} == {
        "token": [1, 1], "position": [1, 1], "mask": [1, 10], "k_cache": [2, 2, 10, 16], "v_cache": [2, 2, 10, 16],
        "encoder_out": [1, 10, 32]}
    assert spec.decode.encoder == "encoder" and spec.decode.prompts == [[1]] and spec.decode.eos == 39
    with pytest.raises(BadInput, match=r"transformers\.features: a speech model needs"):
        load_spec(_write(tmp_path / "x", {"model_class": "WhisperForConditionalGeneration", "config": WHISPER}))


def test_whisper_decoder_step_decodes_like_generate(tmp_path):
    """Random weights, fp32: encoder graph + static-cache decoder step (self-attention cached,
    cross-attention over encoder_out) reproduce transformers' greedy generate."""
    pytest.importorskip("transformers")
    import numpy as np
    import torch

    from bot.adapters import transformers as A

    folder, T = _whisper(tmp_path / "w"), 10
    enc, step = A.encoder(folder), A.decoder_step(folder)
    refs = []
    for x in A._features(folder, 2):
        ref = A.greedy(folder, [1], T - 1, {"input": x})
        with torch.no_grad():
            e = enc(torch.from_numpy(x))
        kc, vc = np.zeros((2, 2, T, 16), np.float32), np.zeros((2, 2, T, 16), np.float32)
        mask, toks = np.full((1, T), -1000.0, np.float32), [1]
        with torch.no_grad():
            for pos in range(len(ref)):
                logits, k, v = step(torch.tensor([[toks[pos]]], dtype=torch.int32),
                                    torch.tensor([[pos]], dtype=torch.int32), torch.from_numpy(mask),
                                    torch.from_numpy(kc), torch.from_numpy(vc), e)
                kc[:, :, pos], vc[:, :, pos], mask[0, pos] = k[:, :, 0].numpy(), v[:, :, 0].numpy(), 0.0
                toks.append(int(logits[0].argmax()))
        assert toks[1:] == ref and ref
        refs.append(ref)
    assert refs[0] != refs[1]  # the audio features reach the decoder through cross-attention


CLIP = {"projection_dim": 16,
        "text_config": {"vocab_size": 50, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                        "num_attention_heads": 2, "max_position_embeddings": 8},
        "vision_config": {"image_size": 16, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
                          "num_hidden_layers": 1, "num_attention_heads": 2}}


def test_clip_layout_is_two_towers_chained_with_a_ranking_check(tmp_path):
    spec, _ = load_spec(_write(tmp_path / "c", {"model_class": "CLIPModel", "config": CLIP, "sequence_length": 8}))
    assert [(g.name, [(i.name, i.shape, i.dtype) for i in g.inputs]) for g in spec.graphs] == [
        ("text", [("input_ids", [1, 8], "int32")]), ("vision", [("pixel_values", [1, 3, 16, 16], "float32")])]
    assert spec.chain.graphs == ["text", "vision"] and spec.chain.ranking
    assert spec.chain.outputs == ["text_embeds", "image_embeds"]


def test_ranking_check_fails_when_one_row_reorders():
    import numpy as np

    from bot.compose import _ranking_check

    rng = np.random.default_rng(0)
    ref = [{"t": rng.normal(size=(1, 8)), "i": rng.normal(size=(1, 8))} for _ in range(4)]
    same = _ranking_check(ref, [{k: v * 1.001 for k, v in r.items()} for r in ref], ["t", "i"])
    assert same["passed"] and same["value"] == "4/4"
    # image 0 made identical to text 3: text 3 becomes its nearest, whatever it was before
    swapped = [dict(r) for r in ref]
    swapped[0] = {"t": ref[0]["t"], "i": ref[3]["t"].copy()}
    out = _ranking_check(ref, swapped, ["t", "i"])
    assert not out["passed"] and out["detail"]["rows_equal"] < 4


def test_clip_towers_reproduce_clipmodel(tmp_path):
    """The two tower graphs' modules give CLIPModel's own embeddings (fp32, CPU)."""
    pytest.importorskip("transformers")
    import numpy as np
    import torch

    from bot.adapters import transformers as A

    folder = _write(tmp_path / "c", {"model_class": "CLIPModel", "config": CLIP, "sequence_length": 8})
    ids = np.random.default_rng(1).integers(0, 50, (1, 8)).astype(np.int32)
    px = np.random.default_rng(2).normal(size=(1, 3, 16, 16)).astype(np.float32)
    ref = A.clip_embeddings(folder, ids, px)
    with torch.no_grad():
        t = A.clip_text(folder)(torch.from_numpy(ids)).numpy()
        i = A.clip_vision(folder)(torch.from_numpy(px)).numpy()
    # the towers normalise as CLIPModel does, so the chain compares like with like (scale included)
    assert np.allclose(t, ref["text_embeds"], atol=1e-5) and np.allclose(i, ref["image_embeds"], atol=1e-5)


@pytest.mark.htp
def test_clip_towers_deploy_and_keep_the_ranking_on_htp(tmp_path):
    pytest.importorskip("transformers")
    from bot.deploy import deploy

    folder = _write(tmp_path / "c", {"model_class": "CLIPModel", "config": CLIP, "sequence_length": 8,
                                     "sample_count": 4}, target={"precision": "fp16"})
    out = deploy(folder, out_dir=tmp_path / "out")
    assert out.passed, out.manifest.get("parts")
    (chain,) = out.manifest["e2e"]
    ranking = next(c for c in chain["checks"] if "ranking" in c["name"])
    assert ranking["passed"] and ranking["value"] == "4/4"
    assert ranking["detail"]["rows"] == 4 and 0 < ranking["detail"]["max_abs_similarity_change"] < 0.05


@pytest.mark.htp
def test_whisper_encoder_and_decoder_step_decode_on_htp_like_generate(tmp_path):
    pytest.importorskip("transformers")
    from bot.deploy import deploy

    folder = _whisper(tmp_path / "w", sample_count=2)
    (folder / "aipc.yaml").write_text((folder / "aipc.yaml").read_text() + "target: {precision: fp16}\n")
    out = deploy(folder, out_dir=tmp_path / "out")
    assert out.passed, out.manifest.get("parts")
    dec = out.manifest["e2e"][0]
    assert dec["generated"] == dec["reference"] and dec["sequences"] == 2 and dec["token_agreement"] == 1.0
    assert dec["reference"][0] != dec["reference"][1]  # the features reach the decoder on the HTP too
    assert [p["graph"] for p in out.manifest["parts"]] == ["encoder", "decoder"]


def test_prefill_graph_then_step_decodes_like_generate(tmp_path):
    """With `prefill_length`, the prompt goes through one prefill run (padded at the end), its cache
    entries seed the step graph's cache; greedy tokens must still be generate's."""
    pytest.importorskip("transformers")
    import numpy as np
    import torch

    from bot.adapters import transformers as A

    T, P = 12, 5
    folder = _write(tmp_path / "m", {"model_class": "Qwen2ForCausalLM", "config": dict(LLAMA, initializer_range=0.3),
                                     "max_length": T, "prefill_length": P, "prompts": [[1, 5, 9]]})
    spec, _ = load_spec(folder)
    assert [g.name for g in spec.graphs] == ["prefill", "step"] and spec.decode.prefill == "prefill"
    assert spec.graphs[0].inputs[0].shape == [1, P]
    pre, step = A.prefill(folder), A.step(folder)
    for prompt in ([1, 5, 9], [3, 30, 2, 7, 11]):
        ref = A.greedy(folder, prompt, T - len(prompt))
        n = len(prompt)
        with torch.no_grad():
            logits, k, v = pre(torch.tensor([prompt + [0] * (P - n)], dtype=torch.int32))
        kc, vc = np.zeros((2, 2, T, 8), np.float32), np.zeros((2, 2, T, 8), np.float32)
        kc[:, :, :n], vc[:, :, :n] = k[:, :, :n].numpy(), v[:, :, :n].numpy()
        mask = np.full((1, T), -1000.0, np.float32)
        mask[0, :n] = 0
        toks = prompt + [int(logits[n - 1].argmax())]
        with torch.no_grad():
            for pos in range(n, T - 1):
                lg, k, v = step(torch.tensor([[toks[pos]]], dtype=torch.int32), torch.tensor([[pos]], dtype=torch.int32),
                                torch.from_numpy(mask), torch.from_numpy(kc), torch.from_numpy(vc))
                kc[:, :, pos], vc[:, :, pos], mask[0, pos] = k[:, :, 0].numpy(), v[:, :, 0].numpy(), 0.0
                toks.append(int(lg[0].argmax()))
        assert toks[n:] == ref, (toks[n:], ref)
    with pytest.raises(BadInput, match=r"transformers\.prefill_length: 2 must hold the longest prompt \(3\)"):
        load_spec(_write(tmp_path / "x", {"model_class": "LlamaForCausalLM", "config": LLAMA, "prefill_length": 2,
                                          "prompts": [[1, 2, 3]]}))


@pytest.mark.htp
def test_prefill_and_step_decode_on_htp_like_generate(tmp_path, trained_llama):
    from bench.hf_train import rule_prompts
    from bot.deploy import deploy

    folder = _llama_folder(tmp_path, trained_llama)
    _write(folder, {"model_class": "LlamaForCausalLM", "config": LLAMA, "weights": "weights.pt", "max_length": 12,
                    "prefill_length": 4, "prompts": rule_prompts(3, 32, seed=5)}, target={"precision": "fp16"})
    out = deploy(folder, out_dir=tmp_path / "out")
    assert out.passed, out.manifest.get("parts")
    dec = out.manifest["e2e"][0]
    assert [p["graph"] for p in out.manifest["parts"]] == ["prefill", "step"]
    assert dec["generated"] == dec["reference"] and dec["token_agreement"] == 1.0 and dec["prefill_seconds"] > 0
    assert json.loads((tmp_path / "out" / "runtime" / "decode.json").read_text())["prefill"]
