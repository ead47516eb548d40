"""Hugging Face `transformers` models as people bring them: a class name and a small config.

The definition's `transformers:` section names the class (`LlamaForCausalLM`, `BertForTokenClassification`,
`ViTForImageClassification` …) and the keyword arguments of its config; the model is built from
that config with seeded random weights (no hub access: `HF_HUB_OFFLINE=1`). `expand` turns the
section into the graphs the bot deploys, so the user writes no `model.py`:

- a causal LM becomes one KV-cache *step* graph with a fixed maximum length (`max_length`): inputs
  `token`, `position`, an additive `mask` over the cache slots and the caches `k_cache` / `v_cache`
  ([layers, kv_heads, max_length, head_dim]); outputs `logits` and this position's entries `k_new` /
  `v_new`. The step runs the model's *own* decoder layers, attention modules and rotary embedding;
  only the cache is ours (`StepCache`: the attention's `past_key_values.update` call concatenates
  the static cache with the new entry, which the host writes back). The packaged decode loop runs it
  and is compared with the model's own greedy `generate`;
- an encoder or classifier (token / sequence / image classification) becomes one graph whose output
  is `logits`.

The references this module answers (`transformers:step`, `transformers:calibration`,
`transformers:greedy`, `transformers:model`) are resolved by `bot.model_code.load_callable`,
which passes the model folder; every function reads the definition from there.

torch and transformers are imported inside the functions that build or run a model, never at module
level: loading a definition (`aipc plan`, a deploy served from cache) must not pay for them.
"""

from __future__ import annotations

import copy
import os
import random
from functools import lru_cache
from pathlib import Path
from typing import Any

from bot.errors import BadInput

# Model-class suffix → what the bot builds for it.
TASKS = {"ForCausalLM": "causal-lm", "WhisperForConditionalGeneration": "speech-seq2seq", "CLIPModel": "clip", "ForTokenClassification": "token-classification",
         "ForSequenceClassification": "sequence-classification", "ForImageClassification": "image-classification"}


def task_of(model_class: str) -> str | None:
    return next((t for suffix, t in TASKS.items() if model_class.endswith(suffix)), None)


# -- definition expansion (pure: no torch / transformers import, so `aipc plan` stays light) ------
def _need(cfg: dict, key: str, section: str = "transformers.config") -> Any:
    if key not in cfg:
        raise ValueError(f"{section}.{key}: required to lay out the graphs (give it in the config)")
    return cfg[key]


def lm_dims(cfg: dict) -> dict[str, int]:
    """The cache layout of a Llama / Qwen2-style decoder, from the config (transformers' defaults
    for what is left out: kv heads = heads, head_dim = hidden / heads). The built model is checked
    against it (`_check_dims`)."""
    heads = int(_need(cfg, "num_attention_heads"))
    return {"vocab": int(_need(cfg, "vocab_size")), "layers": int(_need(cfg, "num_hidden_layers")),
            "kv_heads": int(cfg.get("num_key_value_heads") or heads),
            "head_dim": int(cfg.get("head_dim") or int(_need(cfg, "hidden_size")) // heads)}


def expand(raw: dict) -> dict:
    """Fill a raw definition's graphs (and decode section) from its `transformers:` section."""
    t = raw["transformers"]
    cls, cfg = t.get("model_class", ""), t.get("config") or {}
    task = t.get("task") or task_of(cls)
    out = dict(raw)
    if task == "causal-lm":
        d, T = lm_dims(cfg), int(t.get("max_length", 32))
        mask_value = float(t.get("mask_value", -1000.0))
        cache = [d["layers"], d["kv_heads"], T, d["head_dim"]]
        r = float(t.get("cache_range", 8.0))
        prompts = t.get("prompts") or _default_prompts(d["vocab"], int(t.get("seed", 0)))
        longest = max(len(p) for p in prompts)
        if longest >= T:
            raise ValueError(f"transformers.prompts: a prompt of {longest} tokens does not fit max_length {T}")
        graphs = []
        P = t.get("prefill_length")
        if P:
            if longest > int(P) or int(P) >= T:
                raise ValueError(f"transformers.prefill_length: {P} must hold the longest prompt ({longest}) and be "
                                 f"below max_length {T}")
            graphs.append({
                "name": "prefill", "entry": "transformers:prefill",
                "inputs": [{"name": "tokens", "shape": [1, int(P)], "dtype": "int32", "range": [0, d["vocab"] - 1]}],
                "outputs": ["logits", "k_new", "v_new"]})
        out["graphs"] = graphs + [{
            "name": "step", "entry": "transformers:step",
            "inputs": [{"name": "token", "shape": [1, 1], "dtype": "int32", "range": [0, d["vocab"] - 1]},
                       {"name": "position", "shape": [1, 1], "dtype": "int32", "range": [0, T - 1]},
                       {"name": "mask", "shape": [1, T], "range": [mask_value, 0]},
                       {"name": "k_cache", "shape": cache, "range": [-r, r]},
                       {"name": "v_cache", "shape": cache, "range": [-r, r]}],
            "outputs": ["logits", "k_new", "v_new"],
            "calibration": {"generator": "transformers:calibration", "samples": int(t.get("calibration_samples", 16))},
        }]
        dec = {"step": "step", "mask_value": mask_value, "prompts": prompts,
               **({"prefill": "prefill"} if P else {}),
               "cache": [{"input": "k_cache", "output": "k_new", "axis": 2},
                         {"input": "v_cache", "output": "v_new", "axis": 2}],
               "max_new_tokens": int(t.get("max_new_tokens") or T - longest),
               "eos": cfg.get("eos_token_id") if isinstance(cfg.get("eos_token_id"), int) else None,
               "reference": "transformers:greedy"}
        if t.get("min_token_agreement") is not None:
            dec["min_token_agreement"] = t["min_token_agreement"]
        out["decode"] = dec
    elif task == "speech-seq2seq":
        out.update(_whisper_layout(t, cfg))
    elif task == "clip":
        out.update(_clip_layout(t, cfg))
    elif task in ("token-classification", "sequence-classification"):
        S, V = int(t.get("sequence_length", 16)), int(_need(cfg, "vocab_size"))
        out.update(entry="transformers:model", outputs=["logits"],
                   inputs=[{"name": "input_ids", "shape": [1, S], "dtype": "int32", "range": [0, V - 1]}])
    elif task == "image-classification":
        size, ch = int(_need(cfg, "image_size")), int(cfg.get("num_channels", 3))
        out.update(entry="transformers:model", outputs=["logits"],
                   inputs=[{"name": "pixel_values", "shape": [1, ch, size, size], "range": [-1, 1]}])
    else:
        raise ValueError(f"transformers.model_class: {cls!r} is not a class the adapter lays out "
                         f"(its name ends in one of {', '.join(TASKS)})")
    return out


def whisper_dims(cfg: dict) -> dict[str, int]:
    d, heads = int(_need(cfg, "d_model")), int(_need(cfg, "decoder_attention_heads"))
    return {"vocab": int(_need(cfg, "vocab_size")), "layers": int(_need(cfg, "decoder_layers")), "d_model": d,
            "heads": heads, "head_dim": d // heads, "mel": int(cfg.get("num_mel_bins", 80)),
            "source": int(_need(cfg, "max_source_positions")), "start": int(_need(cfg, "decoder_start_token_id"))}


def _whisper_layout(t: dict, cfg: dict) -> dict:
    """Whisper: an encoder graph (log-mel features → encoder_out) run once, and a decoder step graph
    (self-attention KV cache as above; cross-attention over `encoder_out`, recomputed each step)."""
    d, T = whisper_dims(cfg), int(t.get("max_length", 32))
    mask_value, r = float(t.get("mask_value", -1000.0)), float(t.get("cache_range", 8.0))
    if not t.get("features"):
        raise ValueError("transformers.features: a speech model needs file.py:function(n) → log-mel features "
                         f"[1, {d['mel']}, {2 * d['source']}] (e.g. from recorded or synthesized speech)")
    cache = [d["layers"], d["heads"], T, d["head_dim"]]
    prompts = t.get("prompts") or [[d["start"]]]
    dec = {"step": "decoder", "encoder": "encoder", "mask_value": mask_value, "prompts": prompts,
           "cache": [{"input": "k_cache", "output": "k_new", "axis": 2},
                     {"input": "v_cache", "output": "v_new", "axis": 2}],
           "max_new_tokens": int(t.get("max_new_tokens") or T - max(len(p) for p in prompts)),
           "eos": cfg.get("eos_token_id") if isinstance(cfg.get("eos_token_id"), int) else None,
           "reference": "transformers:greedy", "samples": t["features"],
           "sample_count": int(t.get("sample_count", 2))}
    if t.get("min_token_agreement") is not None:
        dec["min_token_agreement"] = t["min_token_agreement"]
    return {"graphs": [
        {"name": "encoder", "entry": "transformers:encoder", "outputs": ["encoder_out"],
         "inputs": [{"name": "input_features", "shape": [1, d["mel"], 2 * d["source"]], "range": [-1, 1.5]}],
         "calibration": {"generator": "transformers:encoder_calibration", "samples": 4}},
        {"name": "decoder", "entry": "transformers:decoder_step", "outputs": ["logits", "k_new", "v_new"],
         "inputs": [{"name": "token", "shape": [1, 1], "dtype": "int32", "range": [0, d["vocab"] - 1]},
                    {"name": "position", "shape": [1, 1], "dtype": "int32", "range": [0, T - 1]},
                    {"name": "mask", "shape": [1, T], "range": [mask_value, 0]},
                    {"name": "k_cache", "shape": cache, "range": [-r, r]},
                    {"name": "v_cache", "shape": cache, "range": [-r, r]},
                    {"name": "encoder_out", "shape": [1, d["source"], d["d_model"]], "range": [-r, r]}],
         "calibration": {"generator": "transformers:calibration", "samples": int(t.get("calibration_samples", 16))}}],
        "decode": dec}


def _clip_layout(t: dict, cfg: dict) -> dict:
    """CLIP: the text tower and the vision tower as two graphs, chained and checked end to end on
    their embeddings and on the image→text similarity ranking."""
    text, vision = cfg.get("text_config") or {}, cfg.get("vision_config") or {}
    V = int(_need(text, "vocab_size", "transformers.config.text_config"))
    S = int(t.get("sequence_length", 16))
    size = int(_need(vision, "image_size", "transformers.config.vision_config"))
    return {"graphs": [
        {"name": "text", "entry": "transformers:clip_text", "outputs": ["text_embeds"],
         "inputs": [{"name": "input_ids", "shape": [1, S], "dtype": "int32", "range": [0, V - 1]}]},
        {"name": "vision", "entry": "transformers:clip_vision", "outputs": ["image_embeds"],
         "inputs": [{"name": "pixel_values", "shape": [1, int(vision.get("num_channels", 3)), size, size],
                     "range": [-1, 1]}]}],
        "chain": {"graphs": ["text", "vision"], "reference": "transformers:clip_embeddings",
                  "outputs": ["text_embeds", "image_embeds"], "samples": int(t.get("sample_count", 4)),
                  "ranking": True}}


def _default_prompts(vocab: int, seed: int, n: int = 4, length: int = 4) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(vocab) for _ in range(length)] for _ in range(n)]


# -- building the model (torch / transformers imported here, only when a graph is built) ----------
@lru_cache(maxsize=4)
def _section(folder: str, mtime_ns: int):
    from bot.spec.loader import load_spec  # deferred: a call-back (the loader expands this adapter); pyproject's import-linter exceptions

    spec, _ = load_spec(folder)
    if spec.transformers is None:
        raise BadInput("the definition has no 'transformers' section", where=f"{folder}/aipc.yaml")
    return spec.transformers


def section(folder: Path):
    folder = Path(folder).resolve()
    return _section(str(folder), (folder / "aipc.yaml").stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _built(folder: str, mtime_ns: int):
    t = _section(folder, mtime_ns)
    os.environ["HF_HUB_OFFLINE"] = "1"  # before the import: huggingface_hub reads it once
    import torch  # deferred: torch (~1 s) only where a model is built or run

    try:
        import transformers  # deferred: seconds to import; only a graph build or a reference needs it
    except ImportError:
        raise BadInput("the definition has a 'transformers' section but transformers is not installed: install "
                       "the bot with its [hf] extra (pip install 'aipc-bot[hf]')", where=f"{folder}/aipc.yaml") from None

    cls = getattr(transformers, t.model_class, None)
    if cls is None or not hasattr(cls, "config_class"):
        raise BadInput(f"transformers.model_class: transformers {transformers.__version__} has no model class "
                       f"{t.model_class!r}", where=f"{folder}/aipc.yaml")
    try:
        cfg = cls.config_class(**t.config)
    except (TypeError, ValueError) as e:
        raise BadInput(f"transformers.config: {cls.config_class.__name__} refused it: {e}",
                       where=f"{folder}/aipc.yaml") from None
    torch.manual_seed(t.seed)
    with torch.no_grad():
        model = cls(cfg).eval()
    if t.weights:
        _load_weights(model, Path(folder) / t.weights, f"{folder}/aipc.yaml (transformers.weights)")
    return model


def _load_weights(model, path: Path, where: str) -> None:
    import torch  # deferred: torch (~1 s) only where a model is built or run

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file  # a dependency of transformers

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or [])
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise BadInput(f"{path.name} does not fit {type(model).__name__} built from the config: "
                       f"missing {missing[:4]}, unexpected {list(unexpected)[:4]}", where=where)


def reference_model(folder: Path):
    """The model as transformers builds it (its default attention implementation)."""
    folder = Path(folder).resolve()
    return _built(str(folder), (folder / "aipc.yaml").stat().st_mtime_ns)


def graph_model(folder: Path):
    """The same weights with eager attention (matmul + softmax: what the ONNX export and the HTP take)."""
    m = copy.deepcopy(reference_model(folder))
    m.config._attn_implementation = "eager"
    return m.eval()


def _check_dims(model, t) -> None:
    d, c = lm_dims(t.config), model.config
    got = {"vocab": c.vocab_size, "layers": c.num_hidden_layers,
           "kv_heads": getattr(c, "num_key_value_heads", None) or c.num_attention_heads,
           "head_dim": getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads}
    if got != d:
        raise BadInput(f"transformers.config: the built model's cache layout {got} differs from the one read "
                       f"from the definition {d}; give these keys explicitly", where="aipc.yaml (transformers)")


class StepCache:
    """What the attention modules see as `past_key_values`: the static cache of one step.

    Each decoder layer's attention calls `update(key, value, layer_idx)` after RoPE; we return the
    layer's cache slots with this position's entry appended (the mask hides slots not yet written)
    and keep the entry, which the step graph outputs for the host to write back at `position`."""

    def __init__(self, k_cache, v_cache):
        self.k_cache, self.v_cache, self.new_k, self.new_v = k_cache, v_cache, [], []

    def update(self, key_states, value_states, layer_idx, cache_kwargs=None):
        import torch  # deferred: torch (~1 s) only where a model is built or run

        if key_states.shape[2] != 1:
            # an encoder-decoder's cross-attention (Whisper) hands over the whole encoder sequence:
            # recomputed from `encoder_out` each step, not cached
            return key_states, value_states
        self.new_k.append(key_states)
        self.new_v.append(value_states)
        return (torch.cat([self.k_cache[layer_idx:layer_idx + 1], key_states], 2),
                torch.cat([self.v_cache[layer_idx:layer_idx + 1], value_states], 2))

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return int(self.k_cache.shape[2])


def _step_module(lm):
    import torch  # deferred: torch (~1 s) only where a model is built or run

    class CausalLMStep(torch.nn.Module):
        """One token through the model's own layers with a static cache: see the module docstring."""

        def __init__(self, lm):
            super().__init__()
            self.lm = lm

        def forward(self, token, position, mask, k_cache, v_cache):
            base = self.lm.get_decoder()
            h = base.embed_tokens(token)  # [1, 1, hidden]
            rope = base.rotary_emb(h, position)
            # additive bias over [cache slots …, this token]: the current token always sees itself
            bias = torch.cat([mask, torch.zeros_like(mask[:, :1])], 1)[:, None, None, :]
            cache = StepCache(k_cache, v_cache)
            for layer in base.layers:
                h = layer(h, attention_mask=bias, position_ids=position, past_key_values=cache,
                          position_embeddings=rope)
                h = h[0] if isinstance(h, tuple) else h
            logits = self.lm.lm_head(base.norm(h))
            return logits[:, -1], torch.cat(cache.new_k, 0), torch.cat(cache.new_v, 0)

    return CausalLMStep(lm).eval()


def _whisper_step_module(m):
    import torch  # deferred: torch (~1 s) only where a model is built or run

    class WhisperDecoderStep(torch.nn.Module):
        """One decoder token with a static self-attention cache, cross-attending to `encoder_out`."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, token, position, mask, k_cache, v_cache, encoder_out):
            dec = self.m.get_decoder()
            h = dec.embed_tokens(token) + dec.embed_positions(token, position_ids=position)
            bias = torch.cat([mask, torch.zeros_like(mask[:, :1])], 1)[:, None, None, :]
            cache = StepCache(k_cache, v_cache)
            for layer in dec.layers:
                h = layer(h, attention_mask=bias, encoder_hidden_states=encoder_out, past_key_values=cache)
                h = h[0] if isinstance(h, tuple) else h
            logits = self.m.proj_out(dec.layer_norm(h))
            return logits[:, -1], torch.cat(cache.new_k, 0), torch.cat(cache.new_v, 0)

    return WhisperDecoderStep(m).eval()


def _prefill_module(lm, length: int):
    import torch  # deferred: torch (~1 s) only where a model is built or run

    class CausalLMPrefill(torch.nn.Module):
        """The prompt (padded at the end to `length`) in one run: every position's logits and cache
        entries. Padding comes after the prompt, so the causal mask alone keeps it out of every real
        position; the host keeps the first len(prompt) entries."""

        def __init__(self, lm):
            super().__init__()
            self.lm = lm
            causal = torch.triu(torch.full((length, length), -1000.0), diagonal=1)
            self.register_buffer("causal", causal[None, None], persistent=False)
            self.register_buffer("positions", torch.arange(length, dtype=torch.int32)[None], persistent=False)

        def forward(self, tokens):
            base = self.lm.get_decoder()
            h = base.embed_tokens(tokens)
            rope = base.rotary_emb(h, self.positions)
            cache = PrefillCache()
            for layer in base.layers:
                h = layer(h, attention_mask=self.causal, position_ids=self.positions, past_key_values=cache,
                          position_embeddings=rope)
                h = h[0] if isinstance(h, tuple) else h
            return self.lm.lm_head(base.norm(h))[0], torch.cat(cache.new_k, 0), torch.cat(cache.new_v, 0)

    return CausalLMPrefill(lm).eval()


class PrefillCache:
    """`past_key_values` of the prefill: nothing cached yet; keeps each layer's entries for the outputs."""

    def __init__(self):
        self.new_k, self.new_v = [], []

    def update(self, key_states, value_states, layer_idx, cache_kwargs=None):
        self.new_k.append(key_states)
        self.new_v.append(value_states)
        return key_states, value_states

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0


# -- the references load_callable resolves ------------------------------------------------------
def step(folder: Path):
    """Entry point of the step graph."""
    m = graph_model(folder)
    _check_dims(m, section(folder))
    return _step_module(m)


def encoder(folder: Path):
    """Entry point of a speech model's encoder graph: log-mel features → `encoder_out`."""
    import torch  # deferred: torch (~1 s) only where a model is built or run

    m = graph_model(folder)

    class Encoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.enc = m.get_encoder()

        def forward(self, input_features):
            return self.enc(input_features).last_hidden_state

    return Encoder(m).eval()


def decoder_step(folder: Path):
    """Entry point of a speech model's decoder step graph."""
    return _whisper_step_module(graph_model(folder))


def _features(folder: Path, n: int):
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path

    from bot.model_code import call, load_callable  # deferred: a call-back, as above

    ref = section(folder).features
    fn = load_callable(folder, ref, "transformers.features")
    return [np.asarray(x, np.float32) for x in call(folder, lambda: list(fn(n)), what=f"the features {ref}")]


def encoder_calibration(folder: Path, n: int):
    return [{"input_features": x} for x in _features(folder, n)]


def _clip_tower(folder: Path, which: str):
    import torch  # deferred: torch (~1 s) only where a model is built or run

    m = graph_model(folder)

    class Tower(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            if which == "text":
                f = self.m.get_text_features(input_ids=x, return_dict=True).pooler_output
            else:
                f = self.m.get_image_features(pixel_values=x, return_dict=True).pooler_output
            # normalised on the device, as CLIPModel's text_embeds / image_embeds are: the chain's
            # reference then is what the towers compute, and SQNR against it means something
            return f / f.norm(p=2, dim=-1, keepdim=True)

    return Tower(m).eval()


def clip_text(folder: Path):
    """Entry point of CLIP's text tower: token ids → projected, normalised text embedding."""
    return _clip_tower(folder, "text")


def clip_vision(folder: Path):
    """Entry point of CLIP's vision tower: pixels → projected, normalised image embedding."""
    return _clip_tower(folder, "vision")


def clip_embeddings(folder: Path, input_ids, pixel_values):
    """The chain's reference: CLIPModel's own forward (default attention) on the same inputs."""
    import torch  # deferred: torch (~1 s) only where a model is built or run

    m = reference_model(folder)
    with torch.no_grad():
        out = m(input_ids=torch.as_tensor(input_ids).long(), pixel_values=torch.as_tensor(pixel_values))
    return {"text_embeds": out.text_embeds.numpy(), "image_embeds": out.image_embeds.numpy()}


def prefill(folder: Path):
    """Entry point of the prefill graph (built when `transformers.prefill_length` is given)."""
    t, m = section(folder), graph_model(folder)
    _check_dims(m, t)
    return _prefill_module(m, int(t.prefill_length))


def model(folder: Path):
    """Entry point of an encoder / classifier graph: the tensor inputs → `logits`."""
    import torch  # deferred: torch (~1 s) only where a model is built or run

    t, m = section(folder), graph_model(folder)
    key = "pixel_values" if task_of(t.model_class) == "image-classification" else "input_ids"

    class Logits(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(**{key: x}).logits

    return Logits(m).eval()


def greedy(folder: Path, prompt: list[int], max_new_tokens: int, encoder_inputs=None) -> list[int]:
    """The reference: transformers' own greedy `generate` (its own cache and attention)."""
    import torch  # deferred: torch (~1 s) only where a model is built or run

    t, m = section(folder), reference_model(folder)
    eos = t.config.get("eos_token_id") if isinstance(t.config.get("eos_token_id"), int) else None
    m.generation_config.eos_token_id = eos  # the decode loop stops on the same token, or on none
    m.generation_config.pad_token_id = eos if eos is not None else 0
    ids = torch.tensor([list(prompt)])
    with torch.no_grad():
        if task_of(t.model_class) == "speech-seq2seq":
            from transformers import GenerationMixin  # deferred: the optional [hf] extra

            # the generic greedy generate (its own EncoderDecoderCache); Whisper's own generate adds
            # language / timestamp logic that a config-built model has no tokens for
            feats = torch.from_numpy(next(iter(encoder_inputs.values()))).float()
            out = GenerationMixin.generate(m, input_features=feats, decoder_input_ids=ids,
                                           max_new_tokens=max_new_tokens, do_sample=False)
        else:
            out = m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, min_new_tokens=0)
    return [int(x) for x in out[0, len(prompt):]]


def calibration(folder: Path, n: int):
    """Real decode states: the step graph's feeds while decoding seeded prompts in PyTorch."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path
    import torch  # deferred: torch (~1 s) only where a model is built or run

    t = section(folder)
    T, rng, out = t.max_length, np.random.default_rng(t.seed + 7), []
    extra: dict = {}
    if task_of(t.model_class) == "speech-seq2seq":
        d = whisper_dims(t.config)
        shape, s, enc = (d["layers"], d["heads"], T, d["head_dim"]), decoder_step(folder), encoder(folder)
        with torch.no_grad():
            encoded = [enc(torch.from_numpy(x)).numpy() for x in _features(folder, 2)]
    else:
        d = lm_dims(t.config)
        shape, s, encoded = (d["layers"], d["kv_heads"], T, d["head_dim"]), step(folder), [None]
    with torch.no_grad():
        while len(out) < n:
            e = encoded[len(out) % len(encoded)]
            extra = {} if e is None else {"encoder_out": e}
            toks = [int(x) for x in rng.integers(0, d["vocab"], 3)]
            kc, vc = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
            mask = np.full((1, T), t.mask_value, np.float32)
            for pos in range(T):
                feed = {"token": np.array([[toks[pos]]], np.int32), "position": np.array([[pos]], np.int32),
                        "mask": mask.copy(), "k_cache": kc.copy(), "v_cache": vc.copy(), **extra}
                if pos % 3 == 2 or pos == T - 1:
                    out.append(feed)
                logits, k, v = s(*(torch.from_numpy(a) for a in feed.values()))
                kc[:, :, pos], vc[:, :, pos], mask[0, pos] = k[:, :, 0].numpy(), v[:, :, 0].numpy(), 0.0
                if pos + 1 >= len(toks):
                    toks.append(int(logits[0].argmax()))
    return out[:n]
