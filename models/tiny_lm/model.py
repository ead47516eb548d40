"""A small decoder-only language model in two forms that share weights:

- `LM.forward(tokens)`: the usual full-sequence causal forward (the PyTorch reference);
- `Step`: one token per call with a static KV cache (fixed maximum length `T`), cache as explicit
  inputs (`k_cache`, `v_cache`: [layers, heads, T, head_dim]) and outputs (`k_new`, `v_new`: this
  position's entries, [layers, heads, 1, head_dim]), a `position` input and an additive `mask`
  input ([1, T]: 0 where the cache holds a token, MASK elsewhere). The host writes `k_new` / `v_new`
  into the cache at `position` and clears the mask there: every shape stays static.

Trained in a few seconds on a fixed rule (x[t+1] = (x[t] + x[t-1]) mod 30 + 2), so its greedy decode
is well defined; `python model.py` retrains and rewrites `weights.pt`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

V, D, H, L, T = 32, 32, 2, 2, 16
DH = D // H
MASK = -40.0
WEIGHTS = Path(__file__).with_name("weights.pt")


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.q, self.k, self.v, self.o = (nn.Linear(D, D) for _ in range(4))
        self.mlp = nn.Sequential(nn.Linear(D, 2 * D), nn.ReLU(), nn.Linear(2 * D, D))

    def heads(self, x):  # [.., S, D] → [.., H, S, DH]
        return x.reshape(*x.shape[:-1], H, DH).transpose(-3, -2)

    def attend(self, q, k, v, bias):  # q [..,H,S,DH], k/v [..,H,S',DH], bias [S,S'] additive
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(DH) + bias, dim=-1)
        return (att @ v).transpose(-3, -2).reshape(*q.shape[:-3], q.shape[-2], D)

    def full(self, x):  # x [.., S, D]
        h = self.ln1(x)
        s = x.shape[-2]
        causal = torch.triu(torch.full((s, s), MASK), diagonal=1)
        x = x + self.o(self.attend(self.heads(self.q(h)), self.heads(self.k(h)), self.heads(self.v(h)), causal))
        return x + self.mlp(self.ln2(x))

    def step(self, x, k_cache, v_cache, mask):  # x [1, D], caches [H, T, DH], mask [1, T]
        h = self.ln1(x)
        k_cur, v_cur = self.heads(self.k(h)), self.heads(self.v(h))  # [H, 1, DH]
        keys, values = torch.cat([k_cache, k_cur], 1), torch.cat([v_cache, v_cur], 1)
        bias = torch.cat([mask, torch.zeros(1, 1)], 1)  # the current token always sees itself
        x = x + self.o(self.attend(self.heads(self.q(h)), keys, values, bias))
        return x + self.mlp(self.ln2(x)), k_cur, v_cur


class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok, self.pos = nn.Embedding(V, D), nn.Embedding(T, D)
        self.blocks = nn.ModuleList(Block() for _ in range(L))
        self.ln, self.head = nn.LayerNorm(D), nn.Linear(D, V)

    def forward(self, tokens):  # [B, S] → [B, S, V]
        x = self.tok(tokens) + self.pos(torch.arange(tokens.shape[1]))
        for b in self.blocks:
            x = b.full(x)
        return self.head(self.ln(x))


class Step(nn.Module):
    def __init__(self, lm: LM):
        super().__init__()
        self.lm = lm

    def forward(self, token, position, mask, k_cache, v_cache):
        lm = self.lm
        x = lm.tok(token[0]) + lm.pos(position[0])  # [1, D]
        ks, vs = [], []
        for i, b in enumerate(lm.blocks):
            x, k, v = b.step(x, k_cache[i], v_cache[i], mask)
            ks.append(k)
            vs.append(v)
        return lm.head(lm.ln(x)), torch.stack(ks), torch.stack(vs)


def _sequences(n: int, s: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((n, s), dtype=np.int64)
    out[:, 0], out[:, 1] = 1, rng.integers(2, V, n)  # 1 is the start token
    out[:, 2] = rng.integers(2, V, n)
    for t in range(3, s):
        out[:, t] = (out[:, t - 1] + out[:, t - 2]) % (V - 2) + 2
    return out


def train(steps: int = 600, seed: int = 0) -> LM:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    lm = LM()
    opt = torch.optim.Adam(lm.parameters(), lr=3e-3)
    for _ in range(steps):
        seq = torch.from_numpy(_sequences(32, T, rng))
        logits = lm(seq)
        loss = nn.functional.cross_entropy(logits[:, 2:-1].reshape(-1, V), seq[:, 3:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return lm.eval()


def lm() -> LM:
    m = LM()
    m.load_state_dict(torch.load(WEIGHTS, weights_only=True))
    return m.eval()


def step() -> nn.Module:
    """Entry point of the deployed graph: one decode step with a static KV cache."""
    return Step(lm()).eval()


@torch.no_grad()
def greedy(prompt: list[int], max_new_tokens: int, encoder_inputs=None) -> list[int]:
    """The PyTorch reference: full-sequence forward, argmax, append (no cache)."""
    m, toks = lm(), list(prompt)
    for _ in range(max_new_tokens):
        logits = m(torch.tensor([toks]))
        toks.append(int(logits[0, -1].argmax()))
    return toks[len(prompt):]


@torch.no_grad()
def calibration(n: int):
    """Real decode states: the step graph's feeds while decoding seeded prompts in PyTorch."""
    s, rng, out = step(), np.random.default_rng(7), []
    while len(out) < n:
        toks = [1, int(rng.integers(2, V)), int(rng.integers(2, V))]
        kc, vc = np.zeros((L, H, T, DH), np.float32), np.zeros((L, H, T, DH), np.float32)
        mask = np.full((1, T), MASK, np.float32)
        for pos in range(T):
            feed = {"token": np.array([[toks[pos]]], np.int32), "position": np.array([[pos]], np.int32),
                    "mask": mask.copy(), "k_cache": kc.copy(), "v_cache": vc.copy()}
            if pos % 3 == 2:
                out.append(feed)
            logits, k, v = s(*(torch.from_numpy(feed[k]) for k in ("token", "position", "mask", "k_cache", "v_cache")))
            kc[:, :, pos], vc[:, :, pos], mask[0, pos] = k[:, :, 0].numpy(), v[:, :, 0].numpy(), 0.0
            if pos + 1 >= len(toks):
                toks.append(int(logits[0].argmax()))
    return out[:n]


if __name__ == "__main__":
    import time

    t0 = time.time()
    m = train()
    torch.save(m.state_dict(), WEIGHTS)
    seq = torch.from_numpy(_sequences(64, T, np.random.default_rng(99)))
    acc = float((m(seq)[:, 2:-1].argmax(-1) == seq[:, 3:]).float().mean())
    print(f"trained in {time.time() - t0:.1f} s; next-token accuracy {acc:.3f}; wrote {WEIGHTS}")
