"""A Whisper-style encoder–decoder, tiny and seeded: conv front of the encoder on log-mel frames +
one attention layer; a decoder with self-attention over a static KV cache and cross-attention over
the encoder output. Deployed as two graphs: `encoder` (run once per utterance) and `decoder` (one
token per call, cache as explicit inputs/outputs, position and mask inputs). The log-mel front end
stays on the host (frontend.py)."""

import math

import numpy as np
import torch
from torch import nn

from frontend import N_SAMPLES, SR, log_mel

V, D, H, L, T, FR = 24, 32, 2, 2, 12, 25
DH, MASK = D // H, -40.0


def _heads(x):  # [S, D] → [H, S, DH]
    return x.reshape(x.shape[0], H, DH).transpose(0, 1)


def _attend(q, k, v, bias=None):
    s = q @ k.transpose(1, 2) / math.sqrt(DH)
    att = torch.softmax(s if bias is None else s + bias, dim=-1)
    return (att @ v).transpose(0, 1).reshape(q.shape[1], D)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv1d(16, D, 3, padding=1), nn.Conv1d(D, D, 3, stride=2, padding=1)
        self.pos = nn.Parameter(torch.randn(FR, D) * 0.1)
        self.ln, self.qkv, self.o = nn.LayerNorm(D), nn.Linear(D, 3 * D), nn.Linear(D, D)

    def forward(self, mel):  # [1, 16, 50] → [1, 25, D]
        x = torch.relu(self.conv2(torch.relu(self.conv1(mel))))[0].t() + self.pos
        q, k, v = self.qkv(self.ln(x)).chunk(3, -1)
        return (x + self.o(_attend(_heads(q), _heads(k), _heads(v))))[None]


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(D), nn.LayerNorm(D), nn.LayerNorm(D)
        self.q, self.k, self.v, self.o = (nn.Linear(D, D) for _ in range(4))
        self.cq, self.ck, self.cv, self.co = (nn.Linear(D, D) for _ in range(4))
        self.mlp = nn.Sequential(nn.Linear(D, 2 * D), nn.ReLU(), nn.Linear(2 * D, D))

    def cross(self, x, enc):
        h = self.ln2(x)
        return x + 6 * self.co(_attend(_heads(self.cq(h)), _heads(self.ck(enc)) * 4, _heads(self.cv(enc))))

    def full(self, x, enc):
        h, s = self.ln1(x), x.shape[0]
        causal = torch.triu(torch.full((s, s), MASK), diagonal=1)
        x = x + self.o(_attend(_heads(self.q(h)), _heads(self.k(h)), _heads(self.v(h)), causal))
        x = self.cross(x, enc)
        return x + self.mlp(self.ln3(x))

    def step(self, x, kc, vc, mask, enc):
        h = self.ln1(x)
        k, v = _heads(self.k(h)), _heads(self.v(h))
        bias = torch.cat([mask, torch.zeros(1, 1)], 1)
        x = x + self.o(_attend(_heads(self.q(h)), torch.cat([kc, k], 1), torch.cat([vc, v], 1), bias))
        x = self.cross(x, enc)
        return x + self.mlp(self.ln3(x)), k, v


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok, self.pos = nn.Embedding(V, D), nn.Embedding(T, D)
        self.layers = nn.ModuleList(Layer() for _ in range(L))
        self.ln, self.head = nn.LayerNorm(D), nn.Linear(D, V)

    def full(self, tokens, enc):  # [S] tokens, enc [FR, D] → [S, V]
        x = self.tok(tokens) + self.pos(torch.arange(tokens.shape[0]))
        for layer in self.layers:
            x = layer.full(x, enc)
        return self.head(self.ln(x)) * 4

    def forward(self, token, position, mask, k_cache, v_cache, encoder_out):
        x = self.tok(token[0]) + self.pos(position[0])
        ks, vs = [], []
        for i, layer in enumerate(self.layers):
            x, k, v = layer.step(x, k_cache[i], v_cache[i], mask, encoder_out[0])
            ks.append(k)
            vs.append(v)
        return self.head(self.ln(x)) * 4, torch.stack(ks), torch.stack(vs)


def _seeded():
    torch.manual_seed(0)
    return Encoder().eval(), Decoder().eval()


def encoder():
    return _seeded()[0]


def decoder():
    return _seeded()[1]


def audio(n: int):
    """Seeded utterances: three tones with a little noise (0.5 s at 8 kHz)."""
    rng, t = np.random.default_rng(3), np.arange(N_SAMPLES) / SR
    return [sum(np.sin(2 * np.pi * f * t) * (t // (0.5 / 3) == j) for j, f in enumerate(rng.uniform(200, 3500, 3)))
            .astype(np.float32) + 0.01 * rng.standard_normal(N_SAMPLES).astype(np.float32) for _ in range(n)]


def mel_samples(n: int):
    return [log_mel(a) for a in audio(n)]


@torch.no_grad()
def calibration(n: int):
    """Decoder feeds from real decodes of seeded utterances."""
    enc, dec = _seeded()
    out = []
    for a in audio(max(1, n // 6 + 1)):
        e = enc(torch.from_numpy(log_mel(a)["mel"]))
        kc, vc = torch.zeros(L, H, T, DH), torch.zeros(L, H, T, DH)
        mask, tok = torch.full((1, T), MASK), 1
        for pos in range(T):
            feed = dict(token=torch.tensor([[tok]], dtype=torch.int32), position=torch.tensor([[pos]], dtype=torch.int32),
                        mask=mask.clone(), k_cache=kc.clone(), v_cache=vc.clone(), encoder_out=e)
            out.append({k: v.numpy() for k, v in feed.items()})
            logits, k, v = dec(*feed.values())
            kc[:, :, pos], vc[:, :, pos], mask[0, pos], tok = k[:, :, 0], v[:, :, 0], 0.0, int(logits[0].argmax())
    return out[:n]


@torch.no_grad()
def greedy(prompt, max_new_tokens, encoder_inputs):
    """PyTorch reference: encoder, then full-sequence decoder forward + argmax per token (no cache)."""
    enc, dec = _seeded()
    e, toks = enc(torch.from_numpy(encoder_inputs["mel"]))[0], list(prompt)
    for _ in range(max_new_tokens):
        toks.append(int(dec.full(torch.tensor(toks), e)[-1].argmax()))
    return toks[len(prompt):]
