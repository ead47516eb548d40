"""Seconds of training for the transformers decoders of the benchmark and the tests.

A model with random weights has near-flat next-token distributions: its greedy decode turns on
logit gaps of a few thousandths, below fp16's error, so "token agreement" would measure ties, not
the deployment. People bring *trained* models; without hub access we train the tiny config for a
few hundred steps on a fixed rule (x[t+1] = (x[t-1] + 1) mod (V-2) + 2: the
next token depends on the one two back, so attention and positions matter), so
its greedy decode is well defined, and save the state dict the definition's `transformers.weights`
names. Deterministic: seeded data, seeded init, CPU.
"""

from __future__ import annotations

import os
from pathlib import Path


def rule_sequences(n: int, length: int, vocab: int, rng):
    import numpy as np

    out = np.zeros((n, length), dtype=np.int64)
    out[:, 0] = 1
    out[:, 1], out[:, 2] = rng.integers(2, vocab, n), rng.integers(2, vocab, n)
    for t in range(3, length):
        out[:, t] = (out[:, t - 2] - 1) % (vocab - 2) + 2
    return out


def train_causal_lm(model_class: str, config: dict, out: Path, *, steps: int = 300, length: int = 16,
                    seed: int = 0, lr: float = 3e-3) -> float:
    """Train `model_class(config)` on the rule, save its state dict to `out`; returns the
    held-out next-token accuracy."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import numpy as np
    import torch
    import transformers  # deferred: only training needs it

    cls = getattr(transformers, model_class)
    torch.set_num_threads(1)  # the machine's cores are shared; a tiny model gains nothing from more
    torch.manual_seed(seed)
    model = cls(cls.config_class(**config))
    rng, vocab = np.random.default_rng(seed), config["vocab_size"]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        seq = torch.from_numpy(rule_sequences(32, length, vocab, rng))
        loss = model(input_ids=seq, labels=seq).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    seq = torch.from_numpy(rule_sequences(64, length, vocab, np.random.default_rng(seed + 99)))
    with torch.no_grad():
        acc = float((model(input_ids=seq).logits[:, 2:-1].argmax(-1) == seq[:, 3:]).float().mean())
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, out)
    return acc


def rule_prompts(n: int, vocab: int, seed: int) -> list[list[int]]:
    """Prompts of the rule's form (start token, two seeds) the decode check and generate both see."""
    import numpy as np

    return rule_sequences(n, 3, vocab, np.random.default_rng(seed)).tolist()


def word_tokens(text: str, eos: int = 2) -> list[int]:
    """A character 'tokenizer' for the speech benchmark: a–z → 3…28, space → 29, then eos."""
    return [29 if c == " " else ord(c) - ord("a") + 3 for c in text] + [eos]


def train_whisper(config: dict, features: list, texts: list[str], out: Path, *, steps: int = 150,
                  seed: int = 0, lr: float = 3e-3) -> float:
    """Train a config-built WhisperForConditionalGeneration to transcribe the given utterances
    (log-mel features) into `word_tokens`, save its state dict; returns the teacher-forced token
    accuracy on them. A few words, seconds of CPU: enough that its greedy decode follows the audio."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import numpy as np
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration  # deferred: only training needs it

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(WhisperConfig(**config))
    eos, pad = config.get("eos_token_id", 2), -100
    labels = [word_tokens(t, eos) for t in texts]
    width = max(map(len, labels))
    y = torch.tensor([lab + [pad] * (width - len(lab)) for lab in labels])
    x = torch.from_numpy(np.concatenate(features)).float()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(input_features=x, labels=y).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(input_features=x, labels=y).logits.argmax(-1)
    acc = float((pred == y)[y != pad].float().mean())
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, out)
    return acc
